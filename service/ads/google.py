"""HTTP to Google: the OAuth token endpoint and ``uploadClickConversions``; no decisions here.

OAuth (RFC 6749 section 6, as Google's token endpoint speaks it): ``POST token_uri`` with the
form ``grant_type=refresh_token&refresh_token=...&client_id=...&client_secret=...`` answers
``{"access_token", "expires_in", "token_type": "Bearer", ...}``, or 400
``{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}``
when the grant is gone. The upload's wire format is in ``service/ads/wire.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from core.clock import Clock
from service.ads.settings import AdsSettings
from service.ads.wire import upload_url

#: Seconds an access token is treated as expired before Google says so.
EXPIRY_MARGIN = 60.0


class TransportFailure(Exception):
    """No answer: a timeout or a network error (``kind``), after ``latency`` seconds."""

    def __init__(self, kind: str, latency: float, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.latency = latency
        self.detail = detail


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: Any  # parsed JSON, or None
    request_id: str | None
    latency: float
    retry_after: float | None


def _retry_after(value: str | None) -> float | None:
    try:
        return min(max(float(value), 0.0), 86_400.0) if value else None
    except ValueError:  # an HTTP-date: the backoff policy decides instead
        return None


def _answer(response: httpx.Response) -> HttpAnswer:
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        body = None
    return HttpAnswer(
        status=response.status_code,
        body=body,
        request_id=(response.headers.get("request-id") or None),
        latency=response.elapsed.total_seconds(),
        retry_after=_retry_after(response.headers.get("retry-after")),
    )


class GoogleAds:
    def __init__(self, settings: AdsSettings, http: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.ads_request_timeout_seconds),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, url: str, started: float, clock: Clock, **kwargs: Any) -> HttpAnswer:
        try:
            response = await self._http.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransportFailure(
                "timeout", clock.monotonic() - started, type(exc).__name__
            ) from None
        except httpx.HTTPError as exc:
            raise TransportFailure(
                "network_error", clock.monotonic() - started, type(exc).__name__
            ) from None
        return _answer(response)

    async def refresh(self, refresh_token: str, clock: Clock) -> HttpAnswer:
        settings = self._settings
        secret = settings.ads_oauth_client_secret
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": settings.ads_oauth_client_id or "",
            "client_secret": secret.get_secret_value() if secret else "",
        }
        return await self._post(
            settings.ads_oauth_token_url,
            clock.monotonic(),
            clock,
            data=form,
            headers={"Accept": "application/json"},
        )

    async def upload(
        self,
        *,
        customer_id: str,
        login_customer_id: str | None,
        access_token: str,
        body: dict[str, Any],
        clock: Clock,
    ) -> HttpAnswer:
        settings = self._settings
        token = settings.ads_developer_token
        headers = {
            "Authorization": f"Bearer {access_token}",
            "developer-token": token.get_secret_value() if token else "",
            "Content-Type": "application/json",
        }
        if login_customer_id:
            headers["login-customer-id"] = login_customer_id
        url = upload_url(settings.ads_api_base_url, settings.ads_api_version, customer_id)
        return await self._post(
            url,
            clock.monotonic(),
            clock,
            content=orjson.dumps(body),
            headers=headers,
        )


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str
    expires_at: float  # wall clock


def access_token_from(body: Any, now: float) -> AccessToken | None:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        return None
    lifetime = body.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
    return AccessToken(body["access_token"], now + max(0.0, seconds - EXPIRY_MARGIN))


class AccessTokens:
    """Access tokens per connection (site and generation), kept until shortly before they
    expire: one refresh per hour per site instead of one per request. Per process."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[int, int], AccessToken] = {}

    def get(self, site_id: int, generation: int, now: float) -> str | None:
        token = self._tokens.get((site_id, generation))
        if token is None or token.expires_at <= now:
            return None
        return token.value

    def put(self, site_id: int, generation: int, token: AccessToken) -> None:
        self._tokens[(site_id, generation)] = token

    def drop(self, site_id: int) -> None:
        for key in [k for k in self._tokens if k[0] == site_id]:
            del self._tokens[key]
