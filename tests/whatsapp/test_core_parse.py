# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.whatsapp.parse import InvalidPayload, parse_webhook
from tests.whatsapp import payloads as p

WA = "905321234567"


def test_text_message_with_contact_profile() -> None:
    batch = parse_webhook(p.inbound(WA, "Ayşe", p.text(WA, "wamid.1", "Merhaba")))
    assert batch.issues == []
    assert batch.profiles == {WA: "Ayşe"}
    [msg] = batch.messages
    assert (msg.provider_id, msg.wa_id, msg.kind, msg.body) == ("wamid.1", WA, "text", "Merhaba")
    assert msg.timestamp == 1_700_000_100
    assert msg.profile_name == "Ayşe"
    assert msg.phone_number_id == p.PHONE_NUMBER_ID


def test_every_message_type_is_kept() -> None:
    batch = parse_webhook(p.inbound(WA, "Ayşe", *p.ALL_TYPES))
    assert [m.provider_id for m in batch.messages] == [m["id"] for m in p.ALL_TYPES]
    by_id = {m.provider_id: m for m in batch.messages}
    assert by_id["wamid.I1"].body == "fatura"
    assert by_id["wamid.I1"].content["id"] == "1234567"
    assert by_id["wamid.A1"].body is None and by_id["wamid.A1"].content["voice"] is True
    assert by_id["wamid.D1"].content["filename"] == "contract.pdf"
    assert by_id["wamid.L1"].content["latitude"] == pytest.approx(41.0082)
    assert by_id["wamid.L1"].body == "Mağaza"
    assert by_id["wamid.C1"].content["items"][0]["name"]["first_name"] == "Ayşe"
    assert by_id["wamid.B1"].body == "Evet"
    assert by_id["wamid.LR1"].body == "Kargo"
    assert by_id["wamid.R1"].body == "\U0001f44d"
    assert by_id["wamid.R1"].content["message_id"] == "wamid.OUT1"
    unsupported = by_id["wamid.U1"]
    assert unsupported.kind == "unsupported" and unsupported.errors[0].code == 131051
    assert (
        unsupported.payload()["errors"][0]["details"] == "Message type is currently not supported."
    )
    unknown = by_id["wamid.X1"]
    assert (unknown.kind, unknown.raw_type) == ("unknown", "hologram")
    assert unknown.payload() == {"type": "hologram", "content": {"frames": 3}}


def test_context_and_referral_are_kept() -> None:
    referral = {
        "source_url": "https://fb.me/abc",
        "source_id": "ADID",
        "source_type": "ad",
        "headline": "Kampanya",
        "body": "Yaz indirimi",
        "media_type": "image",
        "image_url": "https://example.com/ad.jpg",
        "ctwa_clid": "CLID",
    }
    msg = p.text(
        WA,
        "wamid.2",
        "Bu ürün var mı?",
        context={"from": p.DISPLAY_NUMBER, "id": "wamid.OUT9"},
        referral=referral,
    )
    [parsed] = parse_webhook(p.inbound(WA, "Ayşe", msg)).messages
    assert parsed.reply_to == "wamid.OUT9"
    assert parsed.referral == referral
    assert parsed.payload()["context"]["id"] == "wamid.OUT9"


def test_several_entries_and_changes_in_order() -> None:
    payload = p.envelope(
        p.value(contacts=[p.contact("1", "A")], messages=[p.text("1", "m1", "a")]),
        p.value(statuses=[p.status("out1", "delivered")]),
        p.value(contacts=[p.contact("2", "B")], messages=[p.text("2", "m2", "b")]),
        entries=2,
    )
    assert len(payload["entry"]) == 2
    batch = parse_webhook(payload)
    assert sorted(m.provider_id for m in batch.messages) == ["m1", "m2"]
    assert {m.provider_id: m.profile_name for m in batch.messages} == {"m1": "A", "m2": "B"}
    assert [s.provider_id for s in batch.statuses] == ["out1"]


def test_statuses_with_errors() -> None:
    batch = parse_webhook(
        p.statuses(
            p.status("out1", "sent", ts=10),
            p.status("out1", "failed", ts=11, errors=[p.RE_ENGAGEMENT_ERROR]),
        )
    )
    sent, failed = batch.statuses
    assert (sent.status, sent.timestamp, sent.errors) == ("sent", 10, ())
    assert failed.status == "failed"
    assert failed.errors[0].code == 131047
    assert failed.errors[0].title == "Re-engagement message"
    assert "24 hours" in (failed.errors[0].details or "")


def test_malformed_parts_are_skipped_with_issues() -> None:
    payload = p.envelope(
        p.value(
            messages=[
                "not an object",
                {"from": WA, "type": "text"},  # no id
                {"id": "x" * 500, "from": WA, "type": "text"},  # id too long for the index
                p.text(WA, "ok", "fine", ts=0),
            ],
            statuses=[{"id": "s", "status": "exploded"}, 7],
        )
    )
    batch = parse_webhook(payload)
    assert [m.provider_id for m in batch.messages] == ["ok"]
    assert batch.messages[0].timestamp is None  # 0 is not a usable timestamp
    assert batch.statuses == []
    assert len(batch.issues) == 5


def test_non_message_fields_are_ignored() -> None:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": p.WABA_ID,
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {"event": "APPROVED", "message_template_id": 1},
                    }
                ],
            }
        ],
    }
    batch = parse_webhook(payload)
    assert batch.messages == [] and batch.statuses == [] and batch.issues == []


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "x",
        3,
        {},
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": {}},
    ],
)
def test_foreign_envelopes_are_refused(payload: Any) -> None:
    with pytest.raises(InvalidPayload):
        parse_webhook(payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "object",
                    "entry",
                    "changes",
                    "value",
                    "field",
                    "messages",
                    "statuses",
                    "id",
                    "from",
                    "type",
                    "text",
                    "body",
                    "status",
                    "contacts",
                    "wa_id",
                    "profile",
                    "errors",
                ]
            )
            | st.text(max_size=4),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=200)
@given(body=JSON)
def test_parser_is_total(body: Any) -> None:
    """Arbitrary JSON either is refused as a foreign envelope or parses without raising."""
    wrapped = {"object": "whatsapp_business_account", "entry": [body]}
    for candidate in (body, wrapped, {"object": "whatsapp_business_account", "entry": body}):
        try:
            batch = parse_webhook(candidate)
        except InvalidPayload:
            continue
        for msg in batch.messages:
            assert isinstance(msg.provider_id, str) and 0 < len(msg.provider_id) <= 191
            assert msg.body is None or isinstance(msg.body, str)
