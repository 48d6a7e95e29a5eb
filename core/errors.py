"""The small set of exceptions that cross layer boundaries.

Driver errors (SQLAlchemy, redis-py, httpx) are wrapped into these at the adapter boundary so
that domain code and routes never depend on a driver's exception hierarchy.
"""

from __future__ import annotations

from typing import Any


class KervanError(Exception):
    """Base class of every kervan exception."""

    code: str = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationFailed(KervanError):
    """Input does not satisfy the domain's rules (mapped to 422)."""

    code = "validation_failed"


class NotFound(KervanError):
    """The addressed entity does not exist (mapped to 404)."""

    code = "not_found"


class Conflict(KervanError):
    """The request conflicts with the current state (mapped to 409)."""

    code = "conflict"


class Forbidden(KervanError):
    """The caller is known but not allowed (mapped to 403)."""

    code = "forbidden"


class BackendUnavailable(KervanError):
    """A storage or state backend (database, Redis) cannot be reached or failed (mapped to 503)."""

    code = "backend_unavailable"

    def __init__(self, component: str, message: str, *, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.component = component


class StorageError(BackendUnavailable):
    """The relational database failed."""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__("database", message, details=details)


class StateBackendError(BackendUnavailable):
    """The state backend (Redis or its in-process replacement) failed."""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__("redis", message, details=details)


class ProviderError(KervanError):
    """An external provider (WhatsApp Graph API, Telegram Bot API) refused or failed a call."""

    code = "provider_error"
