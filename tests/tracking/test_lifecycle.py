# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""The intent lifecycle: statuses set by editors and owners, the seal as a sale (idempotent for
the same amount, its hook inside the seal's transaction), junk, and every change limited to the
caller's site."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from service.tracking import lifecycle
from service.tracking.scope import SiteScope
from tests.tracking.people_rig import ADMIN, Rig, make_rig, rig, stack  # noqa: F401


async def _shop(rig: Rig) -> tuple[int, dict[str, str], dict[str, str]]:
    site = await rig.site("Shop")
    editor = await rig.signed_in(site["id"], "editor@example.com", "editor")
    viewer = await rig.signed_in(site["id"], "viewer@example.com", "viewer")
    return site["id"], editor, viewer


async def test_editors_set_statuses_and_viewers_do_not(rig: Rig) -> None:
    sid, editor, viewer = await _shop(rig)
    session = await rig.tracking_session(sid)
    intent = await rig.intent(sid, session_id=session)
    path = f"/t/sites/{sid}/intents/{intent}"

    cancelled = await rig.client.patch(path, json={"status": "cancelled"}, headers=editor)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["id"] == intent and body["status"] == "cancelled"
    assert body["session"]["id"] == session  # the dashboard's representation, with attribution
    assert body == (await rig.client.get(path, headers=viewer)).json()

    assert (
        await rig.client.patch(path, json={"status": "pending"}, headers=viewer)
    ).status_code == 403
    back = await rig.client.patch(path, json={"status": "pending"}, headers=editor)
    assert back.json()["status"] == "pending"
    same = await rig.client.patch(path, json={"status": "pending"}, headers=editor)
    assert same.status_code == 200  # nothing to change: no audit row either

    junk = await rig.client.post(f"{path}/junk", headers=editor)
    assert junk.status_code == 200 and junk.json()["status"] == "junk"
    for bad in ({"status": "confirmed"}, {"status": "sold"}, {}, {"status": "junk", "x": 1}):
        refused = await rig.client.patch(path, json=bad, headers=editor)
        assert refused.status_code == 422, bad
    changes = [
        (r["details"]["from"], r["details"]["to"]) for r in await rig.audit("intent.status_changed")
    ]
    assert changes == [("pending", "cancelled"), ("cancelled", "pending"), ("pending", "junk")]
    assert (await rig.audit("intent.status_changed"))[0]["actor"].startswith("person:")


async def test_a_seal_confirms_a_sale_once(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    sid, editor, viewer = await _shop(rig)
    intent = await rig.intent(sid)
    path = f"/t/sites/{sid}/intents/{intent}"
    calls: list[tuple[int, str, str]] = []
    real_hook = lifecycle.on_sealed

    async def recording(conn: Any, scope: SiteScope, sealed: lifecycle.Intent) -> None:
        # Inside the seal's transaction: the row reads as sealed already.
        row = (await lifecycle.get_intent(conn, scope, sealed.id)).row
        calls.append((sealed.id, row.status, scope.actor))
        await real_hook(conn, scope, sealed)

    monkeypatch.setattr(lifecycle, "on_sealed", recording)
    assert (
        await rig.client.post(f"{path}/seal", json={"amount": "10.00"}, headers=viewer)
    ).status_code == 403

    sealed = await rig.client.post(f"{path}/seal", json={"amount": "1250.5"}, headers=editor)
    assert sealed.status_code == 200, sealed.text
    body = sealed.json()
    assert body["status"] == "confirmed" and body["amount"] == "1250.50"
    assert body["currency"] == "TRY"  # the site's, when none is given
    assert body["sealed_at"] is not None and body["sealed_by"].startswith("person:")
    row = await rig.intent_row(sid, intent)
    assert Decimal(row.amount) == Decimal("1250.50") and row.sealed_by == body["sealed_by"]

    # The same amount again: the same answer, nothing changes, the hook does not run again.
    rig.clock.advance(60)
    again = await rig.client.post(
        f"{path}/seal", json={"amount": "1250.50", "currency": "try"}, headers=editor
    )
    assert again.status_code == 200 and again.json() == body
    other = await rig.client.post(f"{path}/seal", json={"amount": "99.00"}, headers=editor)
    assert other.status_code == 409 and other.json()["error"]["code"] == "already_sealed"
    assert other.json()["error"]["details"] == {"amount": "1250.50", "currency": "TRY"}
    euros = await rig.client.post(
        f"{path}/seal", json={"amount": "1250.50", "currency": "EUR"}, headers=editor
    )
    assert euros.status_code == 409
    # A sealed intent keeps its status.
    for change in (
        rig.client.patch(path, json={"status": "junk"}, headers=editor),
        rig.client.post(f"{path}/junk", headers=editor),
    ):
        refused = await change
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "intent_sealed"

    assert calls == [(intent, "confirmed", body["sealed_by"])]
    [audit] = await rig.audit("intent.sealed")
    assert audit["details"] == {
        "intent": intent,
        "from": "pending",
        "to": "confirmed",
        "amount": "1250.50",
        "currency": "TRY",
    }


async def test_a_failing_hook_undoes_the_seal(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    sid, editor, _viewer = await _shop(rig)
    intent = await rig.intent(sid)

    async def failing(conn: Any, scope: SiteScope, sealed: lifecycle.Intent) -> None:
        raise lifecycle.ValidationFailed("the upload could not be enqueued")

    monkeypatch.setattr(lifecycle, "on_sealed", failing)
    refused = await rig.client.post(
        f"/t/sites/{sid}/intents/{intent}/seal", json={"amount": "5"}, headers=editor
    )
    assert refused.status_code == 422
    row = await rig.intent_row(sid, intent)
    assert row.status == "pending" and row.amount is None and row.sealed_at is None
    assert await rig.audit("intent.sealed") == []


@pytest.mark.parametrize(
    "amount", ["0", "0.00", "-5", "1.234", "1e3", "1000000000000", " 5", 5, "abc"]
)
async def test_bad_amounts_are_refused(rig: Rig, amount: object) -> None:
    site = await rig.site("Shop")
    intent = await rig.intent(site["id"])
    answer = await rig.client.post(
        f"/t/sites/{site['id']}/intents/{intent}/seal", json={"amount": amount}, headers=ADMIN
    )
    assert answer.status_code == 422, answer.text
    assert (await rig.intent_row(site["id"], intent)).status == "pending"


async def test_another_sites_intent_is_not_found(rig: Rig) -> None:
    sid, editor, _viewer = await _shop(rig)
    theirs = await rig.site("Theirs")
    foreign = await rig.intent(theirs["id"], target="tel:+491701234567")
    own = await rig.intent(sid)
    attempts = [
        ("PATCH", f"/t/sites/{sid}/intents/{foreign}", {"status": "junk"}),
        ("POST", f"/t/sites/{sid}/intents/{foreign}/junk", None),
        ("POST", f"/t/sites/{sid}/intents/{foreign}/seal", {"amount": "1.00"}),
        ("PATCH", f"/t/sites/{theirs['id']}/intents/{foreign}", {"status": "junk"}),
        ("POST", f"/t/sites/{theirs['id']}/intents/{own}/seal", {"amount": "1.00"}),
        ("POST", f"/t/sites/{sid}/intents/99999999/junk", None),
        ("POST", f"/t/sites/{sid}/intents/x/junk", None),
    ]
    for method, path, body in attempts:
        answer = await rig.client.request(method, path, json=body, headers=editor)
        assert answer.status_code == 404, (method, path, answer.text)
        assert "491701234567" not in answer.text
    row = await rig.intent_row(theirs["id"], foreign)
    assert row.status == "pending" and row.amount is None
    # An admin reaches both sites' intents.
    admin = await rig.client.post(
        f"/t/sites/{theirs['id']}/intents/{foreign}/seal", json={"amount": "3"}, headers=ADMIN
    )
    assert admin.status_code == 200 and admin.json()["sealed_by"] == "admin:api-key"
