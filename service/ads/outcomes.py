"""What each answer of Google means for a conversion and for the site's connection (no I/O).

Row errors (``ConversionUploadErrorEnum.ConversionUploadError``, proto
``google/ads/googleads/v21/errors/conversion_upload_error.proto``):

- done: the conversion is already recorded - ``CLICK_CONVERSION_ALREADY_EXISTS`` (same click and
  time), ``ORDER_ID_ALREADY_IN_USE`` (the order id was recorded before: an earlier attempt
  whose answer was lost) and ``DUPLICATE_ORDER_ID``;
- retry not before 6 hours: ``TOO_RECENT_EVENT`` ("the click ... occurred less than 6 hours
  ago. Retry after 6 hours") and ``TOO_RECENT_CONVERSION_ACTION`` ("a conversion action that
  was just created. Try importing again in 6 hours");
- retry with backoff: Google's transient families (``internalError``, ``quotaError``) and
  ``TOO_MANY_CONVERSIONS_IN_REQUEST`` (kervan never sends more than 2,000);
- permanent, with the code as the reason the intent shows: ``EXPIRED_EVENT``,
  ``UNPARSEABLE_GCLID``, ``CONVERSION_PRECEDES_EVENT``, ``EVENT_NOT_FOUND``,
  ``UNAUTHORIZED_CUSTOMER``, ... and any code not listed (the owner may retry once fixed).

Request-level answers decide for the whole batch: 429, 5xx, timeouts and network errors back
off (and count against the customer's circuit breaker); a revoked or expired refresh token
(``invalid_grant`` from the token endpoint, ``OAUTH_TOKEN_REVOKED``) or a connection Google
refuses (permission denied, unknown customer or conversion action) pauses the site's uploads
with that reason until its owner connects again; an expired access token is refreshed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from service.ads.wire import AdsError

TOO_RECENT_DELAY = 6 * 3600.0

DONE_CODES = frozenset(
    {"CLICK_CONVERSION_ALREADY_EXISTS", "DUPLICATE_ORDER_ID", "ORDER_ID_ALREADY_IN_USE"}
)
TOO_RECENT_CODES = frozenset({"TOO_RECENT_EVENT", "TOO_RECENT_CONVERSION_ACTION"})
TRANSIENT_FAMILIES = frozenset({"internalError", "quotaError"})
TRANSIENT_CODES = frozenset({"TOO_MANY_CONVERSIONS_IN_REQUEST", "CONCURRENT_MODIFICATION"})
#: The documented permanent row errors, with what the owner reads on the intent.
PERMANENT_MESSAGES: dict[str, str] = {
    "EXPIRED_EVENT": "The click is older than the conversion action's click-through window.",
    "UNPARSEABLE_GCLID": "Google could not decode the gclid (was it modified?).",
    "UNPARSEABLE_GBRAID": "Google could not decode the gbraid (was it modified?).",
    "UNPARSEABLE_WBRAID": "Google could not decode the wbraid (was it modified?).",
    "CONVERSION_PRECEDES_EVENT": "The sale's time is before the click's.",
    "EVENT_NOT_FOUND": "Google could not attribute the sale to a click of a Google Ads campaign.",
    "CLICK_NOT_FOUND": "Google could not match the sale to a click.",
    "UNAUTHORIZED_CUSTOMER": "The click belongs to an Ads account this connection cannot access.",
    "INVALID_CUSTOMER_FOR_CLICK": "The click belongs to another Google Ads account.",
    "CONVERSION_TRACKING_NOT_ENABLED_AT_IMPRESSION_TIME": (
        "Conversion tracking was not enabled in the click's account at the time of the click."
    ),
    "GBRAID_WBRAID_BOTH_SET": "A conversion may carry only one of gbraid and wbraid.",
    "ONE_PER_CLICK_CONVERSION_ACTION_NOT_PERMITTED_WITH_BRAID": (
        "One-per-click conversion actions cannot take gbraid or wbraid clicks."
    ),
    "NO_CONVERSION_ACTION_FOUND": "The conversion action does not exist in this account.",
    "INVALID_CONVERSION_ACTION_TYPE": "The conversion action is not set up for uploads.",
    "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS": (
        "The account has not accepted the customer data terms in its conversion settings."
    ),
    "CONVERSION_NOT_COMPLIANT_WITH_ATT_POLICY": "The click did not comply with Apple's ATT policy.",
    "ORDER_ID_CONTAINS_PII": "The order id looks like personal data.",
    "EXTERNAL_ATTRIBUTION_DATA_NOT_SET_FOR_EXTERNALLY_ATTRIBUTED_CONVERSION_ACTION": (
        "The conversion action uses an external attribution model."
    ),
    "ORDER_ID_NOT_PERMITTED_FOR_EXTERNALLY_ATTRIBUTED_CONVERSION_ACTION": (
        "The conversion action uses an external attribution model, which takes no order ids."
    ),
}
#: Request-level codes that mean the connection itself is wrong: the owner must fix it.
CONNECTION_CODES = frozenset(
    {
        "NO_CONVERSION_ACTION_FOUND",
        "INVALID_CONVERSION_ACTION_TYPE",
        "INVALID_CUSTOMER_ID",
        "CUSTOMER_NOT_FOUND",
        "UNAUTHORIZED_CUSTOMER",
        "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS",
    }
)
#: Authentication codes that mean the OAuth grant itself is gone.
REVOKED_CODES = frozenset({"OAUTH_TOKEN_REVOKED", "OAUTH_TOKEN_DISABLED", "GOOGLE_ACCOUNT_DELETED"})
#: Problems of this deployment (its developer token), not of the site: back off, never pause.
DEPLOYMENT_FAMILIES = frozenset({"headerError"})


class Verdict(enum.StrEnum):
    DONE = "done"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class RowOutcome:
    verdict: Verdict
    reason: str | None = None
    message: str | None = None
    #: RETRY: seconds to wait; None: the backoff policy decides.
    delay: float | None = None


def classify_row(errors: list[AdsError]) -> RowOutcome:
    """The outcome of one conversion from its errors (none: uploaded)."""
    if not errors:
        return RowOutcome(Verdict.DONE)
    codes = [e.code for e in errors]
    if any(code in DONE_CODES for code in codes):
        return RowOutcome(Verdict.DONE, next(c for c in codes if c in DONE_CODES))
    first = errors[0]
    permanent = [e for e in errors if not _transient(e) and e.code not in TOO_RECENT_CODES]
    if permanent:
        error = permanent[0]
        message = PERMANENT_MESSAGES.get(error.code) or error.message or None
        return RowOutcome(Verdict.PERMANENT, error.label, _clip(message))
    recent = [e for e in errors if e.code in TOO_RECENT_CODES]
    if recent:
        return RowOutcome(Verdict.RETRY, recent[0].code, _clip(recent[0].message), TOO_RECENT_DELAY)
    return RowOutcome(Verdict.RETRY, first.label, _clip(first.message))


def _transient(error: AdsError) -> bool:
    return error.family in TRANSIENT_FAMILIES or error.code in TRANSIENT_CODES


def _clip(text: str | None) -> str | None:
    return None if not text else text[:255]


class Action(enum.StrEnum):
    ROWS = "rows"  # a 2xx: each row's errors decide
    BACKOFF = "backoff"  # the whole batch waits (429, 5xx, timeouts, unexplained refusals)
    PAUSE = "pause"  # the connection needs its owner: uploads stop until a reconnect
    REFRESH = "refresh"  # the access token expired: get a new one and try again soon


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    action: Action
    reason: str
    message: str | None = None
    #: Counts as a failure of the customer's circuit breaker (Google unavailable or refusing
    #: load), as opposed to an answer about the request itself.
    breaker_failure: bool = False
    retry_after: float | None = None


def classify_upload_status(
    status: int, errors: list[AdsError], message: str, retry_after: float | None
) -> RequestOutcome:
    """A non-2xx answer of ``uploadClickConversions``."""
    codes = [e.code for e in errors]
    families = {e.family for e in errors}
    detail = _clip("; ".join(f"{e.label}: {e.message}" for e in errors) or message)
    first = codes[0] if codes else f"http_{status}"
    if status == 429:
        return RequestOutcome(Action.BACKOFF, "rate_limited", detail, True, retry_after)
    if status >= 500:
        return RequestOutcome(Action.BACKOFF, f"http_{status}", detail, True, retry_after)
    if families & DEPLOYMENT_FAMILIES or any("DEVELOPER_TOKEN" in code for code in codes):
        return RequestOutcome(Action.BACKOFF, first, detail)
    if status == 401:
        if any(code in REVOKED_CODES for code in codes):
            return RequestOutcome(Action.PAUSE, "token_revoked", detail)
        if not codes or any(code.startswith("OAUTH_TOKEN") for code in codes):
            return RequestOutcome(Action.REFRESH, first, detail)
        return RequestOutcome(Action.PAUSE, f"unauthenticated:{first}", detail)
    if status == 403:
        return RequestOutcome(Action.PAUSE, f"permission_denied:{first}", detail)
    if any(code in CONNECTION_CODES for code in codes):
        return RequestOutcome(Action.PAUSE, f"connection_invalid:{first}", detail)
    return RequestOutcome(Action.BACKOFF, first, detail)


def classify_token_status(status: int, error: str, description: str) -> RequestOutcome:
    """A non-2xx answer of the OAuth token endpoint (RFC 6749 section 5.2 errors)."""
    detail = _clip(f"{error}: {description}" if description else error or None)
    if error == "invalid_grant":
        # Google: "Token has been expired or revoked." The owner must grant access again.
        return RequestOutcome(Action.PAUSE, "token_revoked", detail)
    if status == 429 or status >= 500:
        return RequestOutcome(Action.BACKOFF, f"oauth_http_{status}", detail, True)
    # invalid_client, unauthorized_client: this deployment's OAuth client, not the site's.
    return RequestOutcome(Action.BACKOFF, f"oauth_{error or status}", detail)
