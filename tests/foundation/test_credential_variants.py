"""Every credential kervan checks, over HTTP through the real app: near misses are refused.

A comparison weakened to a prefix check (an empty key would then open every admin route), a
"starts with" the other way round, or a case-insensitive compare must each fail a test here.
For every credential the table below sends the empty, truncated, half (a prefix), longer,
case-changed and last-character-changed variants of the exact value and expects the right
refusal with the error envelope; the exact value itself must be accepted, so the tests cannot
pass with everything refused.

One app serves the whole module (all credentials configured at once), so each case is one
request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import orjson
import pytest
import pytest_asyncio
from sqlalchemy import select

from core.consent.subject_proof import derive_subject_key, subject_proof
from core.whatsapp.signature import sign_body
from core.whatsapp.unsubscribe import make_token
from service.db.tables.crm import crm_contacts
from service.settings import Settings
from tests.conftest import running_client, unique
from tests.fakes.graph_server import GraphServer
from tests.images import samples
from tests.whatsapp import payloads as p

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN_KEY = "Adm1n-Key-for-Credential-Tests"
METRICS_TOKEN = "Metrics-Token-0f-Kervan"
COOKIE_SECRET = "Credential-tests-cookie-secret-0123456789"
APP_SECRET = "wa-app-secret-for-credential-tests"
VERIFY_TOKEN = "Wa-Verify-Token-XyZ"
UNSUBSCRIBE_SECRET = "unsubscribe-secret-for-credential-tests"
WA = "905321234567"

#: Near misses of a secret ``s``. Every one must be refused; only ``s`` itself is accepted.
VARIANTS: dict[str, Callable[[str], str]] = {
    "empty": lambda s: "",
    "truncated": lambda s: s[:-1],
    "prefix": lambda s: s[: len(s) // 2],
    "longer": lambda s: s + "0",
    "case-changed": str.swapcase,
    # Another character even ignoring case (hex signatures compare case-insensitively).
    "last-char-changed": lambda s: s[:-1] + ("B" if s[-1].lower() == "a" else "A"),
}
NEAR_MISSES = pytest.mark.parametrize("variant", list(VARIANTS))


def near_miss(variant: str, exact: str) -> str:
    presented = VARIANTS[variant](exact)
    assert presented != exact, (variant, exact)  # a variant equal to the secret tests nothing
    return presented


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# ---------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphServer]:
    server = GraphServer(token="wa-access-token").start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory, graph: GraphServer
) -> AsyncIterator[httpx.AsyncClient]:
    tmp: Path = tmp_path_factory.mktemp("credentials")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp / 'app.db'}",
        redis_url=None,
        redis_namespace=unique("kc"),
        data_dir=tmp / "data",
        images_dir=tmp / "images",
        public_origin="http://testserver",
        cookie_secret=COOKIE_SECRET,
        admin_api_key=ADMIN_KEY,
        # The test client connects from 127.0.0.1: outside this allow-list, only the token opens.
        metrics_allow="10.9.9.0/24",
        metrics_token=METRICS_TOKEN,
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY_TOKEN,
        whatsapp_unsubscribe_secret=UNSUBSCRIBE_SECRET,
        whatsapp_access_token="wa-access-token",
        whatsapp_phone_number_id=graph.phone_number_id,
        whatsapp_graph_base_url=graph.base_url,
        whatsapp_api_version=graph.version,
        queue_embedded_worker=False,
        # Hundreds of refused admin calls from one client must meet the guard, not the limiter.
        ratelimit_default_policy="",
        ratelimit_policies="admin=100000/minute burst 100000",
    )
    async with running_client(settings) as made:
        yield made


# ---------------------------------------------------------------- the admin API key

ADMIN_ROUTES = [
    ("GET", "/admin/lockouts"),
    ("GET", "/admin/ratelimit/policies"),
    ("POST", "/admin/consent/user-7/proof"),
]


def admin_headers(style: str, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-API-Key": key}


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
@NEAR_MISSES
async def test_admin_key_near_misses_are_refused(
    client: httpx.AsyncClient, style: str, variant: str
) -> None:
    headers = admin_headers(style, near_miss(variant, ADMIN_KEY))
    for method, path in ADMIN_ROUTES:
        response = await client.request(method, path, headers=headers)
        assert_refused(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
async def test_admin_key_exact_is_accepted(client: httpx.AsyncClient, style: str) -> None:
    for method, path in ADMIN_ROUTES:
        response = await client.request(method, path, headers=admin_headers(style, ADMIN_KEY))
        assert response.status_code == 200, (method, path, response.text)


# ---------------------------------------------------------------- the /metrics token


@NEAR_MISSES
async def test_metrics_token_near_misses_are_refused(
    client: httpx.AsyncClient, variant: str
) -> None:
    token = near_miss(variant, METRICS_TOKEN)
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert_refused(response, 403, "forbidden")
    assert "kervan_" not in response.text


async def test_metrics_token_exact_is_accepted(client: httpx.AsyncClient) -> None:
    assert_refused(await client.get("/metrics"), 403, "forbidden")  # outside the allow-list
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert "kervan_http_requests_total" in response.text


# ---------------------------------------------------------------- consent subject proofs


def proof_of(subject: str) -> str:
    return subject_proof(subject, derive_subject_key(COOKIE_SECRET))


@NEAR_MISSES
async def test_consent_proof_header_near_misses_are_refused(
    client: httpx.AsyncClient, variant: str
) -> None:
    subject = unique("user")
    headers = {"X-Consent-Proof": near_miss(variant, proof_of(subject))}
    read = await client.get(f"/consent/{subject}", headers=headers)
    assert_refused(read, 403, "subject_proof_invalid")
    assert "token" not in read.json()
    write = await client.put(
        f"/consent/{subject}", json={"choices": {"ads": "granted"}}, headers=headers
    )
    assert_refused(write, 403, "subject_proof_invalid")
    assert_refused(
        await client.delete(f"/consent/{subject}", headers=headers), 403, "subject_proof_invalid"
    )
    # Nothing was written: the exact proof reads an untouched state.
    state = await client.get(f"/consent/{subject}", headers={"X-Consent-Proof": proof_of(subject)})
    assert state.json()["purposes"]["ads"]["status"] == "unknown"


@NEAR_MISSES
async def test_consent_proof_cookie_near_misses_are_refused(
    client: httpx.AsyncClient, variant: str
) -> None:
    subject = unique("user")
    cookie = f"{subject}.{near_miss(variant, proof_of(subject))}"
    headers = {"Cookie": f"kervan_consent_subject={cookie}"}
    read = await client.get(f"/consent/{subject}", headers=headers)
    assert_refused(read, 401, "subject_proof_required")
    write = await client.put(
        f"/consent/{subject}", json={"choices": {"ads": "granted"}}, headers=headers
    )
    assert_refused(write, 401, "subject_proof_required")


async def test_consent_proof_exact_is_accepted(client: httpx.AsyncClient) -> None:
    subject = unique("user")
    by_header = {"X-Consent-Proof": proof_of(subject)}
    written = await client.put(
        f"/consent/{subject}", json={"choices": {"ads": "granted"}}, headers=by_header
    )
    assert written.status_code == 200, written.text
    by_cookie = {"Cookie": f"kervan_consent_subject={subject}.{proof_of(subject)}"}
    for headers in (by_header, by_cookie):
        read = await client.get(f"/consent/{subject}", headers=headers)
        assert read.status_code == 200, read.text
        assert read.json()["purposes"]["ads"]["status"] == "granted"


# ---------------------------------------------------------------- signed image URLs


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def signed_variant(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """The path and query of one signed variant URL the app handed out for a real image."""
    uploaded = await client.post(
        "/admin/images",
        files={"file": ("card.jpg", samples.jpeg(400, 300, seed=3), "application/octet-stream")},
        data={"alt": "A card"},
        headers=admin_headers("bearer", ADMIN_KEY),
    )
    assert uploaded.status_code == 201, uploaded.text
    url = urlsplit(uploaded.json()["srcset"]["jpeg"][0]["src"])
    return url.path, dict(parse_qsl(url.query))


@NEAR_MISSES
async def test_image_signature_near_misses_are_refused(
    client: httpx.AsyncClient, signed_variant: tuple[str, dict[str, str]], variant: str
) -> None:
    path, params = signed_variant
    forged = {**params, "s": near_miss(variant, params["s"])}
    response = await client.get(f"{path}?{urlencode(forged)}")
    assert_refused(response, 403, "bad_signature")


async def test_image_signature_exact_is_accepted(
    client: httpx.AsyncClient, signed_variant: tuple[str, dict[str, str]]
) -> None:
    path, params = signed_variant
    response = await client.get(f"{path}?{urlencode(params)}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    # Without the signature at all: refused as well.
    unsigned = {k: v for k, v in params.items() if k != "s"}
    assert_refused(await client.get(f"{path}?{urlencode(unsigned)}"), 403, "bad_signature")


# ---------------------------------------------------------------- WhatsApp webhook signature


def inbound_body() -> bytes:
    message_id = f"wamid.{uuid.uuid4().hex}"
    return orjson.dumps(p.inbound(WA, "Ayşe", p.text(WA, message_id, "merhaba")))


def digest_of(body: bytes) -> str:
    return sign_body(APP_SECRET, body).removeprefix("sha256=")


@pytest.mark.parametrize(
    "variant", [v for v in VARIANTS if v != "case-changed"] + ["no-prefix", "sha1-prefix"]
)
async def test_webhook_signature_near_misses_are_refused(
    client: httpx.AsyncClient, variant: str
) -> None:
    body = inbound_body()
    digest = digest_of(body)
    if variant == "no-prefix":
        header = digest
    elif variant == "sha1-prefix":
        header = f"sha1={digest}"
    else:
        header = f"sha256={near_miss(variant, digest)}"
    response = await client.post(
        "/webhooks/wa", content=body, headers={"X-Hub-Signature-256": header}
    )
    assert_refused(response, 401, "invalid_signature")


@pytest.mark.parametrize("spelling", ["exact", "upper-case hex", "upper-case prefix"])
async def test_webhook_signature_exact_is_accepted(
    client: httpx.AsyncClient, spelling: str
) -> None:
    """Hex digits name the same bytes in either case (core/whatsapp/signature.py compares them
    case-insensitively on purpose), so only the spelling of the digest differs here."""
    body = inbound_body()
    digest = digest_of(body)
    header = {
        "exact": f"sha256={digest}",
        "upper-case hex": f"sha256={digest.upper()}",
        "upper-case prefix": f"SHA256={digest}",
    }[spelling]
    response = await client.post(
        "/webhooks/wa", content=body, headers={"X-Hub-Signature-256": header}
    )
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == 1


# ---------------------------------------------------------------- WhatsApp verify token


def handshake(token: str) -> dict[str, str]:
    return {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "8472"}


@NEAR_MISSES
async def test_webhook_verify_token_near_misses_are_refused(
    client: httpx.AsyncClient, variant: str
) -> None:
    response = await client.get("/webhooks/wa", params=handshake(near_miss(variant, VERIFY_TOKEN)))
    assert_refused(response, 403, "verification_failed")


async def test_webhook_verify_token_exact_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get("/webhooks/wa", params=handshake(VERIFY_TOKEN))
    assert response.status_code == 200
    assert response.text == "8472"


# ---------------------------------------------------------------- WhatsApp unsubscribe links


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def contact_id(client: httpx.AsyncClient) -> int:
    body = inbound_body()
    stored = await client.post(
        "/webhooks/wa",
        content=body,
        headers={"X-Hub-Signature-256": sign_body(APP_SECRET, body)},
    )
    assert stored.status_code == 200, stored.text
    runtime: Any = client.app.state.runtime  # type: ignore[attr-defined]
    async with runtime.db.connect() as conn:
        found = await conn.scalar(select(crm_contacts.c.id).where(crm_contacts.c.wa_id == WA))
    assert found is not None
    return int(found)


@NEAR_MISSES
async def test_unsubscribe_token_near_misses_are_refused(
    client: httpx.AsyncClient, contact_id: int, variant: str
) -> None:
    """The link is opened in a browser: a bad one answers an HTML page (404), by design not the
    JSON envelope. Only the MAC part is varied; the contact id part stays right."""
    id_part, mac = make_token(UNSUBSCRIBE_SECRET, contact_id).split(".")
    response = await client.get(f"/u/{id_part}.{near_miss(variant, mac)}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_unsubscribe_token_exact_is_accepted(
    client: httpx.AsyncClient, contact_id: int
) -> None:
    response = await client.get(f"/u/{make_token(UNSUBSCRIBE_SECRET, contact_id)}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
