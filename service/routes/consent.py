"""Consent API: state per subject with its signed token, changes, withdrawal, audit export.

HTTP only: ``ConsentFacility`` runs the operations, ``authorize_subject`` decides who may.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core.consent.model import validate_subject
from service.consent.facility import ConsentFacility
from service.consent.schemas import (
    AdminChoicesIn,
    ChoicesIn,
    ConsentOut,
    EventsOut,
    EventsQuery,
    MintedConsentOut,
    PeriodQuery,
    SubjectPath,
    SubjectProofOut,
    VerificationOut,
    WithdrawQuery,
)
from service.consent.subject_access import authorize_subject
from service.endpoint import admin_principal, api
from service.responses import json_response, set_cookie
from service.runtime import get_runtime
from service.validation import parse_body, parse_query

# Consent answers are per subject and change on every choice: never cache them.
NO_STORE = {"Cache-Control": "no-store"}
NO_PROOF = "No proof for the subject: neither the X-Consent-Proof header nor the subject cookie"
OTHER_PROOF = "The X-Consent-Proof header is not a proof for this subject"
CONCURRENT = "Consent of the subject changed concurrently; retry"
BAD_SUBJECT = "The subject is not 1-64 characters of letters, digits and . _ : @ + = -"
BAD_CHOICES = "Unknown purpose, value, region or banner version, or an invalid subject"
BAD_PERIOD = "Invalid period ('to' must be later than 'from')"


def _consent(request: Request) -> ConsentFacility:
    facility = get_runtime(request).facility(ConsentFacility)
    return facility


def _subject(request: Request) -> str:
    return validate_subject(str(request.path_params["subject"]))


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    return json_response(body, status=status, headers=NO_STORE)


@api(
    "Consent state of a subject, what to ask now, Consent Mode v2 and a signed token "
    "(needs the subject's proof, or the admin key for server-side readers)",
    path=SubjectPath,
    response=ConsentOut,
    tags=["consent"],
    responses={
        401: NO_PROOF + " (or a wrong admin key)",
        403: OTHER_PROOF + " (or admin access is disabled)",
        422: BAD_SUBJECT,
    },
)
async def get_consent(request: Request) -> Response:
    subject = _subject(request)
    consent = _consent(request)
    await authorize_subject(request, subject, consent.policy, admin_may_read=True)
    return _answer(await consent.state(subject))


@api(
    "Mint an anonymous subject id with its proof (body and cookie) and its empty consent state",
    response=MintedConsentOut,
    status=201,
    tags=["consent"],
)
async def mint_subject(request: Request) -> Response:
    minted = _consent(request).mint()
    response = _answer(minted.body, status=201)
    set_cookie(response, minted.cookie, minted.cookie.value)
    return response


@api(
    "Issue the proof for a subject id of the site's own (admin), for its front end to present",
    path=SubjectPath,
    response=SubjectProofOut,
    tags=["consent", "admin"],
    admin=True,
    responses={422: BAD_SUBJECT},
)
async def admin_subject_proof(request: Request) -> Response:
    return _answer(_consent(request).proof(_subject(request)))


@api(
    "Record consent choices for one or more purposes (needs the subject's proof)",
    path=SubjectPath,
    body=ChoicesIn,
    response=ConsentOut,
    tags=["consent"],
    responses={401: NO_PROOF, 403: OTHER_PROOF, 409: CONCURRENT, 422: BAD_CHOICES},
)
async def put_consent(request: Request) -> Response:
    subject = _subject(request)
    consent = _consent(request)
    await authorize_subject(request, subject, consent.policy)
    body = await parse_body(request, ChoicesIn)
    state = await consent.record(
        subject,
        body.choices,
        source=body.source,
        banner_version=body.banner_version,
        region=body.region,
    )
    return _answer(state)


@api(
    "Withdraw consent (every purpose unless ?purposes= names some; needs the subject's proof)",
    path=SubjectPath,
    query=WithdrawQuery,
    response=ConsentOut,
    tags=["consent"],
    responses={
        401: NO_PROOF,
        403: OTHER_PROOF,
        409: CONCURRENT,
        422: "Unknown purpose, or an invalid subject",
    },
)
async def delete_consent(request: Request) -> Response:
    subject = _subject(request)
    consent = _consent(request)
    await authorize_subject(request, subject, consent.policy)
    purposes = parse_query(request, WithdrawQuery).purpose_list()
    return _answer(await consent.withdraw(subject, purposes))


@api(
    "Consent events of a subject with verification of its whole hash chain (admin)",
    path=SubjectPath,
    query=EventsQuery,
    response=EventsOut,
    tags=["consent", "admin"],
    admin=True,
)
async def list_events(request: Request) -> Response:
    subject = _subject(request)
    query = parse_query(request, EventsQuery)
    page = await _consent(request).events(subject, after_seq=query.after_seq, limit=query.limit)
    return _answer(page)


@api(
    "Record consent choices on behalf of a subject (admin; audited)",
    path=SubjectPath,
    body=AdminChoicesIn,
    response=ConsentOut,
    tags=["consent", "admin"],
    admin=True,
    responses={409: CONCURRENT, 422: BAD_CHOICES},
)
async def admin_put_consent(request: Request) -> Response:
    principal = admin_principal(request)
    subject = _subject(request)
    body = await parse_body(request, AdminChoicesIn)
    state = await _consent(request).admin_record(
        principal.id, subject, body.choices, region=body.region, reason=body.reason
    )
    return _answer(state)


@api(
    "Verify the hash chains of every subject with events in a period (admin)",
    query=PeriodQuery,
    response=VerificationOut,
    tags=["consent", "admin"],
    admin=True,
    responses={422: BAD_PERIOD},
)
async def verify_events(request: Request) -> Response:
    period = parse_query(request, PeriodQuery).period()
    verification = await _consent(request).verify(period)
    return _answer(verification.to_json())


@api(
    "Export a period's consent events as CSV or JSON lines, chain-verified (admin)",
    query=PeriodQuery,
    tags=["consent", "admin"],
    admin=True,
    media_type="application/x-ndjson, text/csv",
    responses={422: BAD_PERIOD},
)
async def export_events(request: Request) -> Response:
    principal = admin_principal(request)
    query = parse_query(request, PeriodQuery)
    exported = await _consent(request).export(principal.id, query.period(), query.format)
    return StreamingResponse(
        exported.chunks, media_type=exported.media_type, headers=exported.headers
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
