# ruff: noqa: F811  (fixtures imported from other test modules are redefined as parameters)
"""Deleted intents and sites in the lookups of other features, over SQLite and MariaDB: a
WhatsApp reference code no longer links, and a sealed sale not uploaded yet is not sent to
Google Ads while deleted (and is sent once restored)."""

from __future__ import annotations

from tests.ads.conftest import AdsRig, ads, google, make_ads  # noqa: F401
from tests.tracking.people_rig import ADMIN, Rig, make_rig, stack  # noqa: F401
from tests.tracking.test_whatsapp_link import convo_of, deliver, wa_rig  # noqa: F401
from tests.whatsapp import payloads


async def test_the_code_of_a_deleted_intent_or_site_links_nothing(wa_rig: Rig) -> None:
    rig = wa_rig
    site = await rig.site("Shop")
    gone_site = await rig.site("Gone")
    deleted = await rig.intent(site["id"], kind="whatsapp", ref_code="K7X2QW")
    of_deleted_site = await rig.intent(gone_site["id"], kind="whatsapp", ref_code="ABCDEF")
    kept = await rig.intent(site["id"], kind="whatsapp", ref_code="ZZZZZZ")
    answer = await rig.client.delete(f"/t/sites/{site['id']}/intents/{deleted}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    answer = await rig.client.delete(f"/t/sites/{gone_site['id']}", headers=ADMIN)
    assert answer.status_code == 200, answer.text

    text = "Merhaba (ref: K7X2QW) (ref: ABCDEF) (ref: ZZZZZZ)"
    message = payloads.text("905321234567", "wamid.trash-1", text)
    await deliver(rig, payloads.inbound("905321234567", "Ayşe", message))
    convo = await convo_of(rig, "905321234567")
    assert (await rig.intent_row(site["id"], kept)).conversation_id == convo
    assert (await rig.intent_row(site["id"], deleted)).conversation_id is None
    assert (await rig.intent_row(gone_site["id"], of_deleted_site)).conversation_id is None


async def test_a_deleted_sale_is_not_uploaded_until_restored(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    gone = await ads.sale(site, "gclid-gone", subject="alice")
    path = f"/t/sites/{site}/intents/{gone}"
    assert (await ads.client.delete(path, headers=ADMIN)).status_code == 200
    # The upload state and the summary pass over it like every other listing.
    hidden = await ads.client.get(f"/t/sites/{site}/ads/uploads/{gone}", headers=ADMIN)
    assert hidden.status_code == 404
    summary = (await ads.client.get(f"/t/sites/{site}/ads/summary", headers=ADMIN)).json()
    assert summary["pending"] == 0

    await ads.drain()
    assert ads.google.uploads() == []
    assert (await ads.upload(site, gone)).status == "pending"  # waits for a restore
    assert (await ads.connection_row(site)).flush_key is None  # and keeps no job busy

    restored = await ads.client.post(f"{path}/restore", headers=ADMIN)
    assert restored.status_code == 200, restored.text
    assert (await ads.connection_row(site)).flush_key is not None  # a job took it
    await ads.drain()
    assert [r["count"] for r in ads.google.uploads()] == [1]
    assert (await ads.upload(site, gone)).status == "uploaded"


async def test_a_restored_site_uploads_what_its_deletion_held_back(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    sale = await ads.sale(site, "gclid-1", subject="alice")
    assert (await ads.client.delete(f"/t/sites/{site}", headers=ADMIN)).status_code == 200
    await ads.drain()
    held = await ads.upload(site, sale)
    assert (held.status, held.reason) == ("not_eligible", "site_deleted")
    assert ads.google.uploads() == []

    assert (await ads.client.post(f"/t/sites/{site}/restore", headers=ADMIN)).status_code == 200
    assert (await ads.upload(site, sale)).status == "pending"
    await ads.drain()
    assert [r["count"] for r in ads.google.uploads()] == [1]
    assert (await ads.upload(site, sale)).status == "uploaded"
