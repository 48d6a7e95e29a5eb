"""Consent API: state per subject with its signed token, changes, withdrawal, audit export."""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core.consent.chain import ChainHead, verify_chain
from core.consent.evaluation import evaluate
from core.consent.model import ConsentState, validate_subject
from core.consent.subject_proof import (
    proves_subject,
    subject_cookie,
    subject_from_cookie,
    subject_proof,
)
from core.consent.token import issue_token
from core.errors import Conflict
from service.audit import record_audit
from service.auth import require_admin
from service.consent import export, store
from service.consent.metrics import CONSENT_CHAIN_BREAKS
from service.consent.policy import ConsentPolicy
from service.consent.schemas import (
    AdminChoicesIn,
    ChoicesIn,
    ConsentOut,
    EventsOut,
    EventsQuery,
    MintedConsentOut,
    PeriodQuery,
    SubjectProofOut,
    VerificationOut,
    WithdrawQuery,
)
from service.endpoint import admin_principal, api
from service.errors import ApiError
from service.responses import json_response
from service.runtime import Runtime, get_runtime
from service.validation import parse_body, parse_query

T = TypeVar("T")
WRITE_ATTEMPTS = 3
# A subject's full chain is verified on each events listing; beyond this, use the export.
VERIFY_MAX_EVENTS = 20_000
PROOF_HEADER = "x-consent-proof"
SUBJECT_COOKIE = "kervan_consent_subject"
# Browsers cap cookie lifetimes at 400 days; the banner re-mints only when the cookie is gone.
SUBJECT_COOKIE_MAX_AGE = 400 * 86_400
ANONYMOUS_PREFIX = "a-"


def _policy(runtime: Runtime) -> ConsentPolicy:
    policy = runtime.facility(ConsentPolicy)
    return policy


def _subject(request: Request) -> str:
    return validate_subject(str(request.path_params["subject"]))


def _state_body(state: ConsentState, policy: ConsentPolicy, now: float) -> dict[str, Any]:
    view = evaluate(state, policy.registry, policy.banner, now)
    token = issue_token(
        state,
        policy.registry.names,
        key=policy.token_keys[0],
        now=now,
        lifetime=policy.token_lifetime,
    )
    return {
        **view.to_json(),
        "token": token,
        "token_expires_at": math.floor(now) + policy.token_lifetime,
    }


def _state_response(state: ConsentState, policy: ConsentPolicy, now: float) -> Response:
    # Consent answers are per subject and change on every choice: never cache them.
    return json_response(_state_body(state, policy, now), headers={"Cache-Control": "no-store"})


async def _authorize_subject(
    request: Request, subject: str, policy: ConsentPolicy, *, admin_may_read: bool = False
) -> None:
    """Only the subject (its proof, in a header or kervan's cookie) may read or change its consent.

    Subject ids are not secrets (user ids are guessable), so knowing one is not enough. A wrong
    header proof is refused even next to a valid cookie, so a caller learns about its mistake
    instead of acting as someone else. Server-side readers (tagging, back ends) read with the
    admin key; admins change consent through the audited ``/admin/consent`` route instead.
    """
    presented = request.headers.get(PROOF_HEADER)
    if presented is not None:
        if proves_subject(subject, presented, policy.subject_keys):
            return
        raise ApiError(403, "subject_proof_invalid", "the consent proof is not for this subject")
    cookie = request.cookies.get(SUBJECT_COOKIE)
    if cookie is not None and subject_from_cookie(cookie, policy.subject_keys) == subject:
        return
    if admin_may_read and ("authorization" in request.headers or "x-api-key" in request.headers):
        await require_admin(request)
        return
    raise ApiError(
        401,
        "subject_proof_required",
        "consent of a subject needs its proof: the X-Consent-Proof header or the cookie "
        "issued by POST /consent",
    )


async def _write(runtime: Runtime, change: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``change`` in its own transaction, retrying when a concurrent writer got there first."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            async with runtime.db.begin() as conn:
                return await change(conn)
        except Conflict:
            if attempt == WRITE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@api(
    "Consent state of a subject, what to ask now, Consent Mode v2 and a signed token "
    "(needs the subject's proof, or the admin key for server-side readers)",
    response=ConsentOut,
    tags=["consent"],
    responses={
        401: "No proof for the subject (or wrong admin key)",
        403: "A proof for another subject",
    },
)
async def get_consent(request: Request) -> Response:
    subject = _subject(request)
    runtime = get_runtime(request)
    policy = _policy(runtime)
    await _authorize_subject(request, subject, policy, admin_may_read=True)
    async with runtime.db.connect() as conn:
        state = await store.load_state(conn, subject)
    now = runtime.clock.now()
    return _state_response(state, policy, now)


@api(
    "Mint an anonymous subject id with its proof (body and cookie) and its empty consent state",
    response=MintedConsentOut,
    tags=["consent"],
)
async def mint_subject(request: Request) -> Response:
    runtime = get_runtime(request)
    policy = _policy(runtime)
    subject = ANONYMOUS_PREFIX + secrets.token_urlsafe(16)
    now = runtime.clock.now()
    body = _state_body(ConsentState(subject), policy, now)
    body["subject_proof"] = subject_proof(subject, policy.subject_keys[0])
    response = json_response(body, status=201, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        SUBJECT_COOKIE,
        subject_cookie(subject, policy.subject_keys[0]),
        max_age=SUBJECT_COOKIE_MAX_AGE,
        path="/consent",
        secure=runtime.settings.env == "production",
        httponly=True,
        samesite="lax",
    )
    return response


@api(
    "Issue the proof for a subject id of the site's own (admin), for its front end to present",
    response=SubjectProofOut,
    tags=["consent", "admin"],
    admin=True,
)
async def admin_subject_proof(request: Request) -> Response:
    subject = _subject(request)
    policy = _policy(get_runtime(request))
    return json_response(
        {"subject": subject, "subject_proof": subject_proof(subject, policy.subject_keys[0])},
        headers={"Cache-Control": "no-store"},
    )


@api(
    "Record consent choices for one or more purposes (needs the subject's proof)",
    body=ChoicesIn,
    response=ConsentOut,
    tags=["consent"],
    responses={
        401: "No proof for the subject",
        403: "A proof for another subject",
        422: "Unknown purpose, value, region or banner version",
    },
)
async def put_consent(request: Request) -> Response:
    subject = _subject(request)
    runtime = get_runtime(request)
    policy = _policy(runtime)
    await _authorize_subject(request, subject, policy)
    body = await parse_body(request, ChoicesIn)
    now = runtime.clock.now()

    async def change(conn: Any) -> ConsentState:
        return await store.record(
            conn,
            subject,
            body.choices,
            source=body.source,
            now=now,
            banner_version=body.banner_version,
            region=body.region,
            policy=policy,
        )

    state = await _write(runtime, change)
    return _state_response(state, policy, now)


@api(
    "Withdraw consent (every purpose unless ?purposes= names some; needs the subject's proof)",
    query=WithdrawQuery,
    response=ConsentOut,
    tags=["consent"],
    responses={401: "No proof for the subject", 403: "A proof for another subject"},
)
async def delete_consent(request: Request) -> Response:
    subject = _subject(request)
    runtime = get_runtime(request)
    policy = _policy(runtime)
    await _authorize_subject(request, subject, policy)
    query = parse_query(request, WithdrawQuery)
    purposes = None
    if query.purposes is not None:
        purposes = [part.strip() for part in query.purposes.split(",") if part.strip()]
    now = runtime.clock.now()

    async def change(conn: Any) -> ConsentState:
        return await store.withdraw(
            conn, subject, source="api", now=now, purposes=purposes, policy=policy
        )

    state = await _write(runtime, change)
    return _state_response(state, policy, now)


@api(
    "Consent events of a subject with verification of its whole hash chain (admin)",
    query=EventsQuery,
    response=EventsOut,
    tags=["consent", "admin"],
    admin=True,
)
async def list_events(request: Request) -> Response:
    subject = _subject(request)
    query = parse_query(request, EventsQuery)
    runtime = get_runtime(request)
    async with runtime.db.connect() as conn:
        page = await store.list_events(
            conn, subject, after_seq=query.after_seq, limit=query.limit + 1
        )
        chain = await store.list_events(conn, subject, limit=VERIFY_MAX_EVENTS)
        state = await store.load_state(conn, subject)
    # The head check needs the whole chain; a longer one is verified by the period export.
    complete = len(chain) < VERIFY_MAX_EVENTS
    heads = {subject: ChainHead(state.seq, state.head_hash)} if state.seq and complete else {}
    report = verify_chain(chain, heads)
    if not report.ok:
        CONSENT_CHAIN_BREAKS.inc(len(report.breaks))
    more = len(page) > query.limit
    page = page[: query.limit]
    return json_response(
        {
            "subject": subject,
            "events": [event.to_json() for event in page],
            "next_after_seq": page[-1].seq if more else None,
            "verification": report.to_json(),
        },
        headers={"Cache-Control": "no-store"},
    )


@api(
    "Record consent choices on behalf of a subject (admin; audited)",
    body=AdminChoicesIn,
    response=ConsentOut,
    tags=["consent", "admin"],
    admin=True,
)
async def admin_put_consent(request: Request) -> Response:
    principal = admin_principal(request)
    subject = _subject(request)
    body = await parse_body(request, AdminChoicesIn)
    runtime = get_runtime(request)
    policy = _policy(runtime)
    now = runtime.clock.now()

    async def change(conn: Any) -> ConsentState:
        state = await store.record(
            conn, subject, body.choices, source="admin", now=now, region=body.region, policy=policy
        )
        await record_audit(
            conn,
            actor=principal.id,
            action="consent.record",
            subject=subject,
            details={"choices": body.choices, "reason": body.reason},
        )
        return state

    state = await _write(runtime, change)
    return _state_response(state, policy, now)


@api(
    "Verify the hash chains of every subject with events in a period (admin)",
    query=PeriodQuery,
    response=VerificationOut,
    tags=["consent", "admin"],
    admin=True,
)
async def verify_events(request: Request) -> Response:
    period = parse_query(request, PeriodQuery).period()
    runtime = get_runtime(request)
    async with runtime.db.connect() as conn:
        verification = await export.verify_period(conn, period)
    if not verification.ok:
        CONSENT_CHAIN_BREAKS.inc(verification.break_count)
    return json_response(verification.to_json(), headers={"Cache-Control": "no-store"})


@api(
    "Export a period's consent events as CSV or JSON lines, chain-verified (admin)",
    query=PeriodQuery,
    tags=["consent", "admin"],
    admin=True,
    media_type="text/csv",
)
async def export_events(request: Request) -> Response:
    principal = admin_principal(request)
    query = parse_query(request, PeriodQuery)
    period = query.period()
    runtime = get_runtime(request)
    async with runtime.db.begin() as conn:
        await record_audit(
            conn,
            actor=principal.id,
            action="consent.export",
            subject="consent_events",
            details={"from_ms": period.start_ms, "to_ms": period.end_ms, "format": query.format},
        )
    async with runtime.db.connect() as conn:
        verification = await export.verify_period(conn, period)
    if not verification.ok:
        CONSENT_CHAIN_BREAKS.inc(verification.break_count)

    async def body() -> AsyncIterator[bytes]:
        async with runtime.db.connect() as stream_conn:
            rows = export.export_rows(stream_conn, period)
            async for chunk in export.render(rows, query.format, verification):
                yield chunk

    extension = "csv" if query.format == "csv" else "jsonl"
    media = "text/csv; charset=utf-8" if query.format == "csv" else "application/x-ndjson"
    filename = f"consent-events-{period.start_ms}-{period.end_ms}.{extension}"
    return StreamingResponse(
        body(),
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Consent-Chain-Ok": "true" if verification.ok else "false",
            "X-Consent-Chain-Checked": str(verification.checked),
            "X-Consent-Chain-Breaks": str(verification.break_count),
            "X-Consent-Exported": str(verification.exported),
        },
    )


routes: list[BaseRoute] = [
    Route("/consent", mint_subject, methods=["POST"]),
    Route("/consent/{subject}", get_consent, methods=["GET"]),
    Route("/consent/{subject}", put_consent, methods=["PUT"]),
    Route("/consent/{subject}", delete_consent, methods=["DELETE"]),
    Route("/consent/{subject}/events", list_events, methods=["GET"]),
    Route("/admin/consent/export", export_events, methods=["GET"]),
    Route("/admin/consent/verify", verify_events, methods=["GET"]),
    Route("/admin/consent/{subject}", admin_put_consent, methods=["PUT"]),
    Route("/admin/consent/{subject}/proof", admin_subject_proof, methods=["POST"]),
]
