"""The Google Ads REST wire format of an offline click-conversion upload (no I/O).

Request (``ConversionUploadService.UploadClickConversions``, proto
``google/ads/googleads/v21/services/conversion_upload_service.proto``, its REST binding
``post: "/v21/customers/{customer_id=*}:uploadClickConversions"``, body ``*``; the same in
later versions)::

    POST {base}/{version}/customers/{customer_id}:uploadClickConversions
    developer-token: ...            login-customer-id: ... (a manager account, optional)
    Authorization: Bearer <access token>
    {"conversions": [{"gclid" | "gbraid" | "wbraid": ..., "conversionAction":
      "customers/{id}/conversionActions/{id}", "conversionDateTime": "yyyy-mm-dd hh:mm:ss+hh:mm",
      "conversionValue": 12.5, "currencyCode": "TRY", "orderId": "..."}],
     "partialFailure": true, "validateOnly": false}

Answer (``UploadClickConversionsResponse``): ``results[]`` aligned with ``conversions[]`` (an
empty object for a row that failed) and ``partialFailureError``, a ``google.rpc.Status`` whose
``details[]`` hold a ``GoogleAdsFailure`` (``errors[]`` with ``errorCode`` such as
``{"conversionUploadError": "TOO_RECENT_EVENT"}``, ``message``, and
``location.fieldPathElements[]`` - ``{"fieldName": "conversions", "index": 3}`` names the
failing row - plus ``requestId``; ``errors.proto``). An error outside the conversions (auth,
quota, a bad customer) is an RPC-level error instead: a non-2xx status with
``{"error": {"code", "message", "status", "details": [GoogleAdsFailure]}}``. The ``request-id``
response header carries the request's id either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import ValidationFailed

CLICK_KINDS = ("gclid", "gbraid", "wbraid")
_CUSTOMER_ID = re.compile(r"^([0-9]{3})-?([0-9]{3})-?([0-9]{4})$")
_ACTION_NAME = re.compile(r"^customers/([0-9]{10})/conversionActions/([0-9]{1,19})$")
_ACTION_ID = re.compile(r"^[0-9]{1,19}$")
#: Every ``ErrorCode`` oneof member is named ``<family>Error`` in JSON (``errors.proto``).
_FAILURE_TYPE = "GoogleAdsFailure"


def customer_id(value: str) -> str:
    """``123-456-7890`` or ``1234567890`` as the ten digits the API's paths and headers use."""
    found = _CUSTOMER_ID.match(value.strip())
    if found is None:
        raise ValidationFailed(
            "a Google Ads customer id is ten digits (123-456-7890)", details={"value": value}
        )
    return "".join(found.groups())


def conversion_action(value: str, customer: str) -> str:
    """A conversion action's resource name, from the name itself or its numeric id.

    The API validates only the action's id ("validation will ignore the customer id"), so a
    name given with another customer's id is kept as given."""
    text = value.strip()
    if _ACTION_NAME.match(text):
        return text
    if _ACTION_ID.match(text):
        return f"customers/{customer}/conversionActions/{text}"
    raise ValidationFailed(
        "a conversion action is its resource name (customers/{id}/conversionActions/{id}) or id",
        details={"value": value},
    )


def order_id(site_id: int, intent_id: int) -> str:
    """Stable for the intent: Google counts one conversion per order id and conversion action,
    so however often the upload is repeated the sale counts once."""
    return f"kervan-{site_id}-{intent_id}"


def conversion_date_time(at: datetime, time_zone: str) -> str:
    """``yyyy-mm-dd hh:mm:ss+hh:mm`` in the site's time zone (the offset of that instant, so a
    daylight-saving change is always right)."""
    local = at.astimezone(ZoneInfo(time_zone))
    offset = local.utcoffset()
    assert offset is not None
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{local:%Y-%m-%d %H:%M:%S}{sign}{hours:02d}:{rest:02d}"


@dataclass(frozen=True, slots=True)
class Conversion:
    """One sealed intent as it is uploaded."""

    intent_id: int
    order_id: str
    click_kind: str
    click_id: str
    conversion_at: datetime
    value: Decimal
    currency: str


def click_conversion(item: Conversion, action: str, time_zone: str) -> dict[str, Any]:
    if item.click_kind not in CLICK_KINDS:
        raise ValueError(f"unknown click id kind {item.click_kind!r}")
    return {
        item.click_kind: item.click_id,
        "conversionAction": action,
        "conversionDateTime": conversion_date_time(item.conversion_at, time_zone),
        "conversionValue": float(item.value),
        "currencyCode": item.currency,
        "orderId": item.order_id,
        # Only conversions whose visitor granted ads consent are ever uploaded.
        "consent": {"adUserData": "GRANTED"},
    }


def upload_body(conversions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"conversions": conversions, "partialFailure": True, "validateOnly": False}


def upload_url(base_url: str, version: str, customer: str) -> str:
    return f"{base_url}/{version}/customers/{customer}:uploadClickConversions"


@dataclass(frozen=True, slots=True)
class AdsError:
    """One ``GoogleAdsError``: its code family (``conversionUploadError``), the code, the
    message, and the index of the conversion it is about (None: about the request)."""

    family: str
    code: str
    message: str
    index: int | None = None

    @property
    def label(self) -> str:
        return self.code or self.family


def _index(error: Mapping[str, Any]) -> int | None:
    location = error.get("location")
    if not isinstance(location, Mapping):
        return None
    for element in location.get("fieldPathElements") or ():
        if isinstance(element, Mapping) and element.get("fieldName") == "conversions":
            # ``index`` is an ``optional int32``: present (even 0) exactly when it names a row.
            index = element.get("index")
            return index if isinstance(index, int) and index >= 0 else None
    return None


def _errors(details: Iterable[Any]) -> tuple[list[AdsError], str | None]:
    found: list[AdsError] = []
    request_id: str | None = None
    for detail in details:
        if not isinstance(detail, Mapping) or not str(detail.get("@type", "")).endswith(
            _FAILURE_TYPE
        ):
            continue
        if isinstance(detail.get("requestId"), str):
            request_id = detail["requestId"]
        for error in detail.get("errors") or ():
            if not isinstance(error, Mapping):
                continue
            code = error.get("errorCode")
            family, value = "unknown", ""
            if isinstance(code, Mapping) and code:
                family, raw = next(iter(code.items()))
                value = str(raw)
            found.append(AdsError(str(family), value, str(error.get("message", "")), _index(error)))
    return found, request_id


def status_errors(status: Any) -> tuple[list[AdsError], str | None]:
    """The ``GoogleAdsError``s of a ``google.rpc.Status`` (``partialFailureError``, or the
    ``error`` object of an RPC-level failure), and its ``requestId``."""
    if not isinstance(status, Mapping):
        return [], None
    details = status.get("details")
    return _errors(details if isinstance(details, list) else ())


@dataclass(frozen=True, slots=True)
class UploadAnswer:
    """A 2xx answer: the errors per conversion index, and those about no row."""

    row_errors: dict[int, list[AdsError]]
    request_errors: list[AdsError]
    request_id: str | None


def parse_upload_answer(body: Any, count: int) -> UploadAnswer:
    if not isinstance(body, Mapping):
        return UploadAnswer({}, [AdsError("unknown", "UNPARSEABLE_ANSWER", "not JSON")], None)
    errors, request_id = status_errors(body.get("partialFailureError"))
    rows: dict[int, list[AdsError]] = {}
    general: list[AdsError] = []
    for error in errors:
        if error.index is not None and error.index < count:
            rows.setdefault(error.index, []).append(error)
        else:
            general.append(error)
    return UploadAnswer(rows, general, request_id)


def parse_rpc_error(body: Any) -> tuple[str, str, list[AdsError], str | None]:
    """An RPC-level failure: its status name (``UNAUTHENTICATED``), message, errors, request id."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return "", "", [], None
    errors, request_id = status_errors(error)
    return str(error.get("status", "")), str(error.get("message", "")), errors, request_id
