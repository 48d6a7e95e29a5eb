"""Client for the WhatsApp Cloud API send endpoint (``POST /{version}/{phone_number_id}/messages``).

httpx errors and Graph error bodies are turned into :class:`GraphError` carrying the action the
caller should take (retry, give up, or switch to a template); nothing httpx-specific leaks out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from core.errors import ProviderError
from core.whatsapp.graph_errors import ErrorAction, classify_error


class GraphError(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        action: ErrorAction,
        http_status: int | None = None,
        code: int | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, details=details)
        self.action = action
        self.http_status = http_status
        self.graph_code = code
        # Read by the queue's attempts ledger, which records the provider's HTTP status.
        self.status = http_status or 0

    def as_record(self) -> dict[str, Any]:
        """What is stored in ``crm_messages.error``."""
        return {
            "action": self.action.value,
            "http_status": self.http_status,
            "code": self.graph_code,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True)
class GraphConfig:
    base_url: str
    version: str
    access_token: str
    phone_number_id: str
    timeout_seconds: float = 10.0


class GraphClient:
    def __init__(self, config: GraphConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.config.base_url.rstrip("/"),
                timeout=self.config.timeout_seconds,
                transport=self._transport,
                headers={"Authorization": f"Bearer {self.config.access_token}"},
            )

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def _messages_path(self) -> str:
        return f"/{self.config.version}/{self.config.phone_number_id}/messages"

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.start()
        assert self._http is not None
        try:
            response = await self._http.post(
                self._messages_path,
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        except httpx.TimeoutException as exc:
            raise GraphError(
                f"Graph API timed out: {type(exc).__name__}", action=ErrorAction.RETRY
            ) from None
        except httpx.HTTPError as exc:
            raise GraphError(
                f"Graph API unreachable: {type(exc).__name__}", action=ErrorAction.RETRY
            ) from None
        try:
            data: Any = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            data = None
        if response.status_code >= 400:
            raise _graph_error(response.status_code, data)
        if not isinstance(data, dict):
            # Like a timeout, an unreadable success leaves it open whether the message went out;
            # delivery is at least once, so it is retried.
            raise GraphError(
                f"Graph API answered HTTP {response.status_code} with an unreadable body",
                action=ErrorAction.RETRY,
                http_status=response.status_code,
            )
        return data

    async def send(self, to: str, message: dict[str, Any]) -> str:
        """Sends ``message`` (``{"type": ..., <type>: {...}}``) and returns the provider id."""
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        body.update(message)
        data = await self._post(body)
        messages = data.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            provider_id = messages[0].get("id")
            if isinstance(provider_id, str) and provider_id:
                return provider_id
        raise GraphError(
            "Graph API answered without a message id", action=ErrorAction.RETRY, http_status=200
        )

    async def mark_read(self, provider_id: str) -> None:
        await self._post(
            {"messaging_product": "whatsapp", "status": "read", "message_id": provider_id}
        )


def _graph_error(status: int, data: Any) -> GraphError:
    error = data.get("error") if isinstance(data, dict) else None
    code: int | None = None
    message = f"Graph API answered HTTP {status}"
    details: Any = None
    if isinstance(error, dict):
        raw_code = error.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        if isinstance(error.get("message"), str):
            message = error["message"][:500]
        error_data = error.get("error_data")
        if isinstance(error_data, dict) and isinstance(error_data.get("details"), str):
            details = error_data["details"][:1000]
    return GraphError(
        message,
        action=classify_error(status, code),
        http_status=status,
        code=code,
        details=details,
    )


def text_message(body: str, *, reply_to: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "text", "text": {"body": body, "preview_url": False}}
    if reply_to:
        message["context"] = {"message_id": reply_to}
    return message


def template_message(name: str, language: str, components: list[Any]) -> dict[str, Any]:
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if components:
        template["components"] = components
    return {"type": "template", "template": template}
