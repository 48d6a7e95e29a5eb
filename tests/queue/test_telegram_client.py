from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from service.telegram.client import FailureKind, TelegramClient, TelegramError
from service.telegram.messages import clean_name, new_customer_text
from tests.fakes.telegram_server import FakeTelegram


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
async def client(fake: FakeTelegram) -> AsyncIterator[TelegramClient]:
    c = TelegramClient(base_url=fake.base_url, token=fake.token, timeout_seconds=0.5)
    yield c
    await c.aclose()


async def test_send_message_round_trip(fake: FakeTelegram, client: TelegramClient) -> None:
    sent = await client.send_message(42, "merhaba", idempotency_key="job-1")
    assert sent.chat_id == 42
    assert sent.message_id == 1
    assert fake.delivered == [{"chat_id": 42, "text": "merhaba", "key": "job-1"}]


async def test_same_idempotency_key_is_delivered_once(
    fake: FakeTelegram, client: TelegramClient
) -> None:
    first = await client.send_message(42, "a", idempotency_key="job-1")
    second = await client.send_message(42, "a", idempotency_key="job-1")
    assert first.message_id == second.message_id
    assert len(fake.requests_for("job-1")) == 2
    assert len(fake.delivered_for("job-1")) == 1


async def test_429_is_rate_limited_with_retry_after(
    fake: FakeTelegram, client: TelegramClient
) -> None:
    fake.script("429:7")
    with pytest.raises(TelegramError) as info:
        await client.send_message(42, "x")
    assert info.value.kind is FailureKind.RATE_LIMITED
    assert info.value.retry_after == 7.0
    assert info.value.status == 429
    assert fake.delivered == []


async def test_500_is_transient(fake: FakeTelegram, client: TelegramClient) -> None:
    fake.script("500")
    with pytest.raises(TelegramError) as info:
        await client.send_message(42, "x")
    assert info.value.kind is FailureKind.TRANSIENT
    assert info.value.status == 500


async def test_timeout_is_transient(fake: FakeTelegram, client: TelegramClient) -> None:
    fake.script("timeout:1.5")
    with pytest.raises(TelegramError) as info:
        await client.send_message(42, "x")
    assert info.value.kind is FailureKind.TRANSIENT
    assert "timed out" in info.value.description
    assert fake.delivered == []


async def test_dropped_connection_is_transient(fake: FakeTelegram, client: TelegramClient) -> None:
    fake.script("drop")
    with pytest.raises(TelegramError) as info:
        await client.send_message(42, "x")
    assert info.value.kind is FailureKind.TRANSIENT
    assert info.value.status == 0


async def test_unknown_chat_is_permanent(fake: FakeTelegram, client: TelegramClient) -> None:
    fake.unknown_chats.add("13")
    with pytest.raises(TelegramError) as info:
        await client.send_message(13, "x")
    assert info.value.kind is FailureKind.PERMANENT
    assert info.value.description == "Bad Request: chat not found"


async def test_wrong_token_is_permanent_and_not_leaked(fake: FakeTelegram) -> None:
    client = TelegramClient(base_url=fake.base_url, token="999:WRONG", timeout_seconds=0.5)
    try:
        with pytest.raises(TelegramError) as info:
            await client.send_message(1, "x")
    finally:
        await client.aclose()
    assert info.value.status == 401
    assert info.value.kind is FailureKind.PERMANENT
    assert "WRONG" not in str(info.value)


async def test_connection_refused_does_not_leak_the_token() -> None:
    client = TelegramClient(base_url="http://127.0.0.1:9", token="1:SECRET", timeout_seconds=0.5)
    try:
        with pytest.raises(TelegramError) as info:
            await client.send_message(1, "x")
    finally:
        await client.aclose()
    assert info.value.kind is FailureKind.TRANSIENT
    assert "SECRET" not in str(info.value)


@pytest.mark.parametrize("text", ["", "x" * 4097])
async def test_text_length_is_checked_before_calling(
    fake: FakeTelegram, client: TelegramClient, text: str
) -> None:
    with pytest.raises(TelegramError) as info:
        await client.send_message(1, text)
    assert info.value.kind is FailureKind.PERMANENT
    assert fake.requests == []


async def test_non_json_error_body_is_classified_by_status() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    http = httpx.AsyncClient(transport=httpx.MockTransport(respond))
    client = TelegramClient(base_url="http://telegram.invalid", token="1:T", http=http)
    with pytest.raises(TelegramError) as info:
        await client.send_message(1, "x")
    await http.aclose()
    assert info.value.kind is FailureKind.TRANSIENT
    assert info.value.status == 502


def test_token_is_required() -> None:
    with pytest.raises(ValueError):
        TelegramClient(base_url="http://x", token="")


AT = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("tr", "🔔 Yeni müşteri sırada!\n👤 Ayşe\n⏰ 15.11.2023 01:13:20\n📋 Sıra numarası: 3"),  # noqa: RUF001
        (
            "de",
            "🔔 Neuer Kunde wartet!\n👤 Ayşe\n⏰ 15.11.2023, 01:13:20 Uhr\n"
            "📋 Position in der Warteschlange: 3",
        ),
        ("en", "🔔 New customer waiting!\n👤 Ayşe\n⏰ 2023-11-15 01:13:20\n📋 Queue position: 3"),
    ],
)
def test_new_customer_text_in_each_language(language: str, expected: str) -> None:
    text = new_customer_text(
        name="Ayşe",
        at=AT,
        position=3,
        language=language,
        timezone="Europe/Istanbul",  # type: ignore[arg-type]
    )
    assert text == expected


def test_names_are_cleaned_and_shortened() -> None:
    assert clean_name("  Ali\n\u202eVeli\x00 ") == "Ali Veli"
    assert len(clean_name("x" * 500)) == 64
    assert "(no name)" in new_customer_text(name="\n", at=AT, position=1, language="en")


def test_position_must_be_positive() -> None:
    with pytest.raises(ValueError):
        new_customer_text(name="a", at=AT, position=0, language="en")
