"""The wire format and the classification of Google's answers, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.errors import ValidationFailed
from service.ads.outcomes import (
    TOO_RECENT_DELAY,
    Action,
    Verdict,
    classify_row,
    classify_token_status,
    classify_upload_status,
)
from service.ads.wire import (
    AdsError,
    Conversion,
    click_conversion,
    conversion_action,
    conversion_date_time,
    customer_id,
    order_id,
    parse_rpc_error,
    parse_upload_answer,
    upload_body,
    upload_url,
)


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "zone", "expected"),
    [
        (utc(2026, 7, 1, 9, 30, 5), "Europe/Istanbul", "2026-07-01 12:30:05+03:00"),
        (utc(2026, 1, 1, 0, 0, 0), "UTC", "2026-01-01 00:00:00+00:00"),
        # Berlin springs forward at 01:00 UTC on 29 March 2026: 02:00 local does not exist.
        (utc(2026, 3, 29, 0, 59, 59), "Europe/Berlin", "2026-03-29 01:59:59+01:00"),
        (utc(2026, 3, 29, 1, 0, 0), "Europe/Berlin", "2026-03-29 03:00:00+02:00"),
        # ...and falls back at 01:00 UTC on 25 October 2026: 02:30 local happens twice.
        (utc(2026, 10, 25, 0, 30, 0), "Europe/Berlin", "2026-10-25 02:30:00+02:00"),
        (utc(2026, 10, 25, 1, 30, 0), "Europe/Berlin", "2026-10-25 02:30:00+01:00"),
        # New York: a negative offset, before and after its own change (8 March 2026).
        (utc(2026, 3, 8, 6, 59, 0), "America/New_York", "2026-03-08 01:59:00-05:00"),
        (utc(2026, 3, 8, 7, 0, 0), "America/New_York", "2026-03-08 03:00:00-04:00"),
        # Half and quarter hours, on both sides of UTC, and a date that differs from UTC's.
        (utc(2026, 5, 1, 20, 0, 0), "Asia/Kolkata", "2026-05-02 01:30:00+05:30"),
        (utc(2026, 1, 10, 12, 0, 0), "America/St_Johns", "2026-01-10 08:30:00-03:30"),
        (utc(2026, 1, 10, 12, 0, 0), "Pacific/Chatham", "2026-01-11 01:45:00+13:45"),
        (utc(2026, 7, 10, 12, 0, 0), "Pacific/Chatham", "2026-07-11 00:45:00+12:45"),
    ],
)
def test_conversion_date_time_is_the_sites_local_time_with_its_offset(
    instant: datetime, zone: str, expected: str
) -> None:
    assert conversion_date_time(instant, zone) == expected


def test_order_ids_are_stable_per_intent_and_distinct_across_sites() -> None:
    assert order_id(7, 42) == order_id(7, 42) == "kervan-7-42"
    assert order_id(7, 42) != order_id(8, 42)
    assert order_id(1, 4) != order_id(14, 0)


def test_customer_ids_and_conversion_actions() -> None:
    assert customer_id("123-456-7890") == customer_id(" 1234567890 ") == "1234567890"
    for bad in ("123-456-789", "12345678901", "abc-def-ghij", ""):
        with pytest.raises(ValidationFailed):
            customer_id(bad)
    assert conversion_action("55", "1234567890") == "customers/1234567890/conversionActions/55"
    name = "customers/9999999999/conversionActions/55"
    assert conversion_action(name, "1234567890") == name
    for bad in ("customers/1/conversionActions/5", "x55", "conversionActions/55"):
        with pytest.raises(ValidationFailed):
            conversion_action(bad, "1234567890")


def test_a_click_conversion_and_the_request() -> None:
    item = Conversion(
        intent_id=3,
        order_id="kervan-1-3",
        click_kind="gbraid",
        click_id="gb-1",
        conversion_at=utc(2026, 6, 1, 10, 0, 0),
        value=Decimal("19.99"),
        currency="EUR",
    )
    action = "customers/1234567890/conversionActions/5"
    body = upload_body([click_conversion(item, action, "Europe/Berlin")])
    assert body == {
        "conversions": [
            {
                "gbraid": "gb-1",
                "conversionAction": action,
                "conversionDateTime": "2026-06-01 12:00:00+02:00",
                "conversionValue": 19.99,
                "currencyCode": "EUR",
                "orderId": "kervan-1-3",
                "consent": {"adUserData": "GRANTED"},
            }
        ],
        "partialFailure": True,
        "validateOnly": False,
    }
    assert (
        upload_url("https://googleads.googleapis.com", "v26", "1234567890")
        == "https://googleads.googleapis.com/v26/customers/1234567890:uploadClickConversions"
    )


def _failure(*errors: dict[str, object]) -> dict[str, object]:
    return {
        "@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
        "errors": list(errors),
        "requestId": "req-1",
    }


def test_partial_failure_errors_land_on_their_rows() -> None:
    answer = {
        "results": [{}, {"gclid": "b"}, {}],
        "partialFailureError": {
            "code": 3,
            "message": "2 failed",
            "details": [
                _failure(
                    {
                        "errorCode": {"conversionUploadError": "EXPIRED_EVENT"},
                        "message": "expired",
                        "location": {
                            "fieldPathElements": [
                                {"fieldName": "conversions", "index": 0},
                                {"fieldName": "gclid"},
                            ]
                        },
                    },
                    {
                        "errorCode": {"conversionUploadError": "TOO_RECENT_EVENT"},
                        "message": "recent",
                        "location": {
                            "fieldPathElements": [{"fieldName": "conversions", "index": 2}]
                        },
                    },
                    {"errorCode": {"requestError": "UNKNOWN"}, "message": "no location"},
                )
            ],
        },
    }
    parsed = parse_upload_answer(answer, 3)
    assert parsed.request_id == "req-1"
    assert parsed.row_errors == {
        0: [AdsError("conversionUploadError", "EXPIRED_EVENT", "expired", 0)],
        2: [AdsError("conversionUploadError", "TOO_RECENT_EVENT", "recent", 2)],
    }
    assert parsed.request_errors == [AdsError("requestError", "UNKNOWN", "no location")]
    clean = parse_upload_answer({"results": [{"gclid": "a"}]}, 1)
    assert clean.row_errors == {} and clean.request_errors == []
    status, message, errors, request_id = parse_rpc_error(
        {
            "error": {
                "code": 401,
                "message": "no",
                "status": "UNAUTHENTICATED",
                "details": [
                    _failure({"errorCode": {"authenticationError": "OAUTH_TOKEN_REVOKED"}})
                ],
            }
        }
    )
    assert (status, message, request_id) == ("UNAUTHENTICATED", "no", "req-1")
    assert errors == [AdsError("authenticationError", "OAUTH_TOKEN_REVOKED", "")]
    assert parse_rpc_error(b"<html>") == ("", "", [], None)


def _row(code: str, family: str = "conversionUploadError") -> list[AdsError]:
    return [AdsError(family, code, f"{code} message", 0)]


@pytest.mark.parametrize(
    "code", ["CLICK_CONVERSION_ALREADY_EXISTS", "DUPLICATE_ORDER_ID", "ORDER_ID_ALREADY_IN_USE"]
)
def test_already_recorded_conversions_count_as_done(code: str) -> None:
    outcome = classify_row(_row(code))
    assert (outcome.verdict, outcome.reason) == (Verdict.DONE, code)


def test_no_error_is_done() -> None:
    assert classify_row([]).verdict is Verdict.DONE and classify_row([]).reason is None


@pytest.mark.parametrize("code", ["TOO_RECENT_EVENT", "TOO_RECENT_CONVERSION_ACTION"])
def test_too_recent_waits_six_hours(code: str) -> None:
    outcome = classify_row(_row(code))
    assert (outcome.verdict, outcome.reason, outcome.delay) == (Verdict.RETRY, code, 6 * 3600.0)
    assert TOO_RECENT_DELAY == 21_600


@pytest.mark.parametrize(
    ("family", "code"),
    [
        ("internalError", "INTERNAL_ERROR"),
        ("internalError", "TRANSIENT_ERROR"),
        ("quotaError", "RESOURCE_TEMPORARILY_EXHAUSTED"),
        ("conversionUploadError", "TOO_MANY_CONVERSIONS_IN_REQUEST"),
    ],
)
def test_transient_row_errors_back_off(family: str, code: str) -> None:
    outcome = classify_row(_row(code, family))
    assert (outcome.verdict, outcome.reason, outcome.delay) == (Verdict.RETRY, code, None)


@pytest.mark.parametrize(
    "code",
    [
        "EXPIRED_EVENT",
        "UNPARSEABLE_GCLID",
        "CONVERSION_PRECEDES_EVENT",
        "EVENT_NOT_FOUND",
        "UNAUTHORIZED_CUSTOMER",
        "INVALID_CUSTOMER_FOR_CLICK",
        "CONVERSION_TRACKING_NOT_ENABLED_AT_IMPRESSION_TIME",
        "GBRAID_WBRAID_BOTH_SET",
        "UNPARSEABLE_WBRAID",
        "UNPARSEABLE_GBRAID",
        "ONE_PER_CLICK_CONVERSION_ACTION_NOT_PERMITTED_WITH_BRAID",
        "NO_CONVERSION_ACTION_FOUND",
        "INVALID_CONVERSION_ACTION_TYPE",
        "CUSTOMER_NOT_ACCEPTED_CUSTOMER_DATA_TERMS",
        "ORDER_ID_CONTAINS_PII",
        "CLICK_NOT_FOUND",
        "SOMETHING_NEW_IN_A_LATER_VERSION",
    ],
)
def test_permanent_row_errors_fail_with_the_code_as_reason(code: str) -> None:
    outcome = classify_row(_row(code))
    assert (outcome.verdict, outcome.reason) == (Verdict.PERMANENT, code)
    assert outcome.message  # the owner reads why


def test_a_permanent_error_wins_over_a_transient_one_and_done_over_all() -> None:
    mixed = [*_row("INTERNAL_ERROR", "internalError"), *_row("EXPIRED_EVENT")]
    assert classify_row(mixed).verdict is Verdict.PERMANENT
    done = [*_row("EXPIRED_EVENT"), *_row("ORDER_ID_ALREADY_IN_USE")]
    assert classify_row(done).verdict is Verdict.DONE


def _errors(family: str, code: str) -> list[AdsError]:
    return [AdsError(family, code, "m")]


@pytest.mark.parametrize(
    ("status", "errors", "action", "reason", "breaker"),
    [
        (429, _errors("quotaError", "RESOURCE_EXHAUSTED"), Action.BACKOFF, "rate_limited", True),
        (500, _errors("internalError", "INTERNAL_ERROR"), Action.BACKOFF, "http_500", True),
        (503, [], Action.BACKOFF, "http_503", True),
        (
            401,
            _errors("authenticationError", "OAUTH_TOKEN_EXPIRED"),
            Action.REFRESH,
            "OAUTH_TOKEN_EXPIRED",
            False,
        ),
        (
            401,
            _errors("authenticationError", "OAUTH_TOKEN_REVOKED"),
            Action.PAUSE,
            "token_revoked",
            False,
        ),
        (
            401,
            _errors("authenticationError", "NOT_ADS_USER"),
            Action.PAUSE,
            "unauthenticated:NOT_ADS_USER",
            False,
        ),
        (
            403,
            _errors("authorizationError", "USER_PERMISSION_DENIED"),
            Action.PAUSE,
            "permission_denied:USER_PERMISSION_DENIED",
            False,
        ),
        (
            403,
            _errors("authorizationError", "DEVELOPER_TOKEN_NOT_APPROVED"),
            Action.BACKOFF,
            "DEVELOPER_TOKEN_NOT_APPROVED",
            False,
        ),
        (
            400,
            _errors("conversionUploadError", "NO_CONVERSION_ACTION_FOUND"),
            Action.PAUSE,
            "connection_invalid:NO_CONVERSION_ACTION_FOUND",
            False,
        ),
        (
            400,
            _errors("requestError", "INVALID_CUSTOMER_ID"),
            Action.PAUSE,
            "connection_invalid:INVALID_CUSTOMER_ID",
            False,
        ),
        (400, _errors("requestError", "BAD_RESOURCE_ID"), Action.BACKOFF, "BAD_RESOURCE_ID", False),
        (404, [], Action.BACKOFF, "http_404", False),
    ],
)
def test_request_level_answers(
    status: int, errors: list[AdsError], action: Action, reason: str, breaker: bool
) -> None:
    outcome = classify_upload_status(status, errors, "message", None)
    assert (outcome.action, outcome.reason, outcome.breaker_failure) == (action, reason, breaker)


def test_retry_after_is_kept() -> None:
    assert classify_upload_status(429, [], "", 30.0).retry_after == 30.0


@pytest.mark.parametrize(
    ("status", "error", "action", "reason", "breaker"),
    [
        (400, "invalid_grant", Action.PAUSE, "token_revoked", False),
        (500, "internal_failure", Action.BACKOFF, "oauth_http_500", True),
        (429, "rate_limit", Action.BACKOFF, "oauth_http_429", True),
        (401, "invalid_client", Action.BACKOFF, "oauth_invalid_client", False),
    ],
)
def test_token_endpoint_answers(
    status: int, error: str, action: Action, reason: str, breaker: bool
) -> None:
    outcome = classify_token_status(status, error, "Token has been expired or revoked.")
    assert (outcome.action, outcome.reason, outcome.breaker_failure) == (action, reason, breaker)
