"""Only a sale with exactly one click id and the visitor's granted, unexpired ads consent is
queued for upload, in the seal's own transaction; otherwise the intent shows why."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from core.errors import ValidationFailed
from service.ads import sealing
from service.db.tables.ads import ads_uploads
from service.tracking import lifecycle
from tests.ads.conftest import AdsRig
from tests.tracking.people_rig import ADMIN

DAY = 86_400.0


async def _state(ads: AdsRig, site: int, intent: int) -> dict[str, Any]:
    answer = await ads.client.get(f"/t/sites/{site}/ads/uploads/{intent}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def test_an_eligible_seal_queues_one_upload_job(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    intent = await ads.visit(site, gclid="gclid-1", subject="alice")
    assert (await _state(ads, site, intent))["status"] == "none"  # not sealed yet
    await ads.seal(site, intent)
    state = await _state(ads, site, intent)
    assert (state["status"], state["reason"], state["order_id"]) == (
        "pending",
        None,
        f"kervan-{site}-{intent}",
    )
    assert state["click_kind"] == "gclid" and state["value"] == "1250.50"
    [job] = await ads.queued()
    assert job == {"site_id": site}
    key = (await ads.connection_row(site)).flush_key
    assert key is not None  # the job responsible for the site's pending rows
    # Sealing again (same amount: the answer of the first seal) queues nothing more, and so
    # does another sale while that job is responsible.
    await ads.seal(site, intent)
    await ads.sale(site, "gclid-2", subject="bob")
    assert len(await ads.queued()) == 1
    assert (await ads.connection_row(site)).flush_key == key
    await ads.drain()
    assert [r["count"] for r in ads.google.uploads()] == [2]
    assert (await ads.connection_row(site)).flush_key is None  # nothing pending: job done
    await ads.sale(site, "gclid-3", subject="carol")  # a new job for a new sale
    assert len(await ads.queued()) == 1 and (await ads.connection_row(site)).flush_key != key


async def test_a_seal_that_rolls_back_leaves_no_upload_and_no_job(
    ads: AdsRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = await ads.site()
    await ads.connect(site)
    intent = await ads.visit(site, gclid="gclid-1")

    async def then_fail(conn: Any, scope: Any, sealed: Any) -> None:
        await sealing.on_sealed(conn, scope, sealed)
        async with ads.rig.db.connect() as other:  # not visible before the commit
            query = select(ads_uploads).where(ads_uploads.c.site_id == site)
            assert (await other.execute(query)).first() is None
        raise ValidationFailed("something later in the seal failed")

    monkeypatch.setattr(lifecycle, "on_sealed", then_fail)
    refused = await ads.client.post(
        f"/t/sites/{site}/intents/{intent}/seal", json={"amount": "10"}, headers=ADMIN
    )
    assert refused.status_code == 422
    assert await ads.upload(site, intent) is None
    assert await ads.queued() == []


@pytest.mark.parametrize(
    ("clicks", "reason"),
    [
        ({}, "no_click_id"),
        ({"gclid": "g-1", "wbraid": "w-1"}, "several_click_ids"),
        ({"gbraid": "gb-1", "wbraid": "w-1"}, "several_click_ids"),
    ],
)
async def test_exactly_one_click_id(ads: AdsRig, clicks: dict[str, str], reason: str) -> None:
    site = await ads.site()
    await ads.connect(site)
    intent = await ads.visit(
        site, gclid=clicks.get("gclid"), gbraid=clicks.get("gbraid"), wbraid=clicks.get("wbraid")
    )
    await ads.seal(site, intent)
    state = await _state(ads, site, intent)
    assert (state["status"], state["reason"]) == ("not_eligible", reason)
    assert state["message"]
    assert await ads.queued() == []


async def test_ads_consent_must_be_granted_and_unexpired(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    cases = {
        "no subject": await ads.visit(site, gclid="g-1", subject=None),
        "never asked": await ads.visit(site, gclid="g-2", subject="quiet", consent=None),
        "denied": await ads.visit(site, gclid="g-3", subject="refuser", consent="denied"),
        "expired": await ads.visit(site, gclid="g-4", subject="old-timer"),
    }
    ads.clock.advance(100 * DAY)  # the default ads consent lasts 3 months
    for subject in ("fresh",):
        await ads.consent(subject)
    cases["granted"] = await ads.visit(site, gclid="g-5", subject="fresh", consent=None)
    for intent in cases.values():
        await ads.seal(site, intent)
    reasons = {name: (await _state(ads, site, i))["reason"] for name, i in cases.items()}
    assert reasons == {
        "no subject": "no_consent_subject",
        "never asked": "ads_consent_missing",
        "denied": "ads_consent_denied",
        "expired": "ads_consent_expired",
        "granted": None,
    }
    assert await ads.queued() == [{"site_id": site}]  # for the one pending row


async def test_without_a_connection_the_intent_says_so_and_a_connect_queues_it(
    ads: AdsRig,
) -> None:
    site = await ads.site()
    intent = await ads.sale(site, "gclid-1")
    state = await _state(ads, site, intent)
    assert (state["status"], state["reason"]) == ("not_eligible", "not_connected")
    assert await ads.queued() == []
    await ads.connect(site)
    assert (await _state(ads, site, intent))["status"] == "pending"
    await ads.drain()
    assert (await _state(ads, site, intent))["status"] == "uploaded"


async def test_consent_is_checked_again_at_the_upload(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    kept = await ads.sale(site, "gclid-kept", subject="keeper")
    withdrawn = await ads.sale(site, "gclid-gone", subject="changed-mind")
    await ads.consent("changed-mind", "denied")  # after the seal, before the upload
    await ads.drain()
    assert (await _state(ads, site, kept))["status"] == "uploaded"
    state = await _state(ads, site, withdrawn)
    assert (state["status"], state["reason"], state["attempts"]) == (
        "not_eligible",
        "ads_consent_denied",
        0,
    )
    [request] = ads.google.uploads()
    assert request["order_ids"] == [f"kervan-{site}-{kept}"]
    log = state["attempts_log"]
    assert [(e["outcome"], e["error_code"]) for e in log] == [
        ("not_eligible", "ads_consent_denied")
    ]
