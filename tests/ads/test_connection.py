"""A site's Google Ads connection: owners connect and disconnect, members read it without the
token, the database never holds the token in clear, every change is audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from service.ads.crypto import TokenCipher
from service.db.tables.foundation import audit_events
from service.tracking.scope import ALL_SITES
from tests.ads.conftest import CUSTOMER, REFRESH_TOKEN, TOKEN_KEY, AdsRig
from tests.tracking.people_rig import ADMIN

NEW_TOKEN = "1//a-brand-new-refresh-token-after-reconsent"


async def _all_text(ads: AdsRig) -> str:
    """Every stored value of every ads table and of the audit log, as text."""
    found: list[str] = []
    async with ads.rig.db.connect() as conn:
        await conn.execution_options(**ALL_SITES)  # every site's rows, on purpose
        for table in ("ads_connections", "ads_uploads", "ads_attempts", "audit_events"):
            rows = await conn.execute(text(f"SELECT * FROM {table}"))
            found += [repr(tuple(row)) for row in rows]
    return "\n".join(found)


async def test_owners_connect_and_the_token_is_stored_encrypted(ads: AdsRig) -> None:
    site = await ads.site()
    empty = await ads.client.get(f"/t/sites/{site}/ads/connection", headers=ADMIN)
    assert empty.status_code == 200 and empty.json()["connected"] is False

    made = await ads.connect(site, customer="123-456-7890", action="55")
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["connected"] is True and body["status"] == "active"
    assert body["customer_id"] == CUSTOMER
    assert body["conversion_action"] == f"customers/{CUSTOMER}/conversionActions/55"
    assert body["refresh_token_stored"] is True and body["connected_by"].startswith("admin:")
    assert REFRESH_TOKEN not in made.text
    read = await ads.client.get(f"/t/sites/{site}/ads/connection", headers=ADMIN)
    assert read.json() == body and REFRESH_TOKEN not in read.text

    row = await ads.connection_row(site)
    assert REFRESH_TOKEN not in row.token_ciphertext
    assert TokenCipher(TOKEN_KEY).decrypt(row.token_ciphertext, site_id=site) == REFRESH_TOKEN
    assert REFRESH_TOKEN not in await _all_text(ads)

    # A reconnect without a token keeps the stored one; with one, replaces it.
    again = await ads.connect(site, action="56", token=None)
    assert again.status_code == 200 and again.json()["conversion_action"].endswith("/56")
    assert (await ads.connection_row(site)).token_ciphertext == row.token_ciphertext
    assert (await ads.connection_row(site)).generation == 2
    replaced = await ads.connect(site, token=NEW_TOKEN)
    assert replaced.status_code == 200
    stored = (await ads.connection_row(site)).token_ciphertext
    assert TokenCipher(TOKEN_KEY).decrypt(stored, site_id=site) == NEW_TOKEN
    assert NEW_TOKEN not in await _all_text(ads)

    async with ads.rig.db.connect() as conn:
        audits = (
            await conn.execute(
                select(audit_events.c.action, audit_events.c.details, audit_events.c.state_after)
                .where(
                    audit_events.c.subject == f"site:{site}",
                    audit_events.c.action.like("ads.%"),
                )
                .order_by(audit_events.c.id)
            )
        ).all()
    assert [a.action for a in audits] == ["ads.connected", "ads.reconnected", "ads.reconnected"]
    assert audits[0].state_after["customer_id"] == CUSTOMER
    assert audits[1].details["token_replaced"] is False
    assert audits[2].details["token_replaced"] is True

    gone = await ads.client.delete(f"/t/sites/{site}/ads/connection", headers=ADMIN)
    assert gone.status_code == 204
    assert await ads.connection_row(site) is None
    after = await ads.client.get(f"/t/sites/{site}/ads/connection", headers=ADMIN)
    assert after.json()["connected"] is False
    assert (
        await ads.client.delete(f"/t/sites/{site}/ads/connection", headers=ADMIN)
    ).status_code == 204


async def test_a_first_connection_needs_a_token_and_valid_ids(ads: AdsRig) -> None:
    site = await ads.site()
    missing = await ads.connect(site, token=None)
    assert missing.status_code == 422 and "refresh_token" in missing.text
    bad: list[dict[str, Any]] = [
        {"customer_id": "12-34", "conversion_action": "5", "refresh_token": REFRESH_TOKEN},
        {"customer_id": CUSTOMER, "conversion_action": "abc", "refresh_token": REFRESH_TOKEN},
        {"customer_id": CUSTOMER, "conversion_action": "5", "refresh_token": "short"},
        {"customer_id": CUSTOMER, "conversion_action": "5", "refresh_token": "has space in it"},
        {"customer_id": CUSTOMER, "conversion_action": "5", "login_customer_id": "1"},
        {"customer_id": CUSTOMER, "conversion_action": "5", "refresh_token": REFRESH_TOKEN, "x": 1},
        {"conversion_action": "5", "refresh_token": REFRESH_TOKEN},
    ]
    for body in bad:
        answer = await ads.client.put(f"/t/sites/{site}/ads/connection", json=body, headers=ADMIN)
        assert answer.status_code == 422, (body, answer.text)
        assert REFRESH_TOKEN not in answer.text  # a refused token is not echoed either
    assert await ads.connection_row(site) is None


async def test_only_owners_change_the_connection_members_read_it(ads: AdsRig) -> None:
    site = await ads.site()
    owner = await ads.rig.signed_in(site, "owner@example.com", "owner")
    editor = await ads.rig.signed_in(site, "editor@example.com", "editor")
    viewer = await ads.rig.signed_in(site, "viewer@example.com", "viewer")
    for headers in (editor, viewer):
        assert (await ads.connect(site, headers=headers)).status_code == 403
    assert (await ads.connect(site, headers=owner)).status_code == 200
    for headers in (editor, viewer):
        read = await ads.client.get(f"/t/sites/{site}/ads/connection", headers=headers)
        assert read.status_code == 200 and read.json()["connected"] is True
        assert REFRESH_TOKEN not in read.text
        gone = await ads.client.delete(f"/t/sites/{site}/ads/connection", headers=headers)
        assert gone.status_code == 403
    assert await ads.connection_row(site) is not None
    assert (await ads.client.get(f"/t/sites/{site}/ads/connection")).status_code == 401


async def test_without_the_servers_ads_settings_nothing_is_stored(make_ads: Any) -> None:
    async with make_ads(ads_token_key="", ads_developer_token="") as ads:
        site = await ads.site()
        refused = await ads.connect(site)
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "ads_not_configured"
        assert error["details"]["missing"] == [
            "KERVAN_ADS_TOKEN_KEY",
            "KERVAN_ADS_DEVELOPER_TOKEN",
        ]
        assert await ads.connection_row(site) is None


async def test_a_disconnect_stops_pending_uploads_and_a_connect_queues_them_again(
    ads: AdsRig,
) -> None:
    site = await ads.site()
    await ads.connect(site)
    intent = await ads.sale(site, "gclid-1")
    assert (
        await ads.client.delete(f"/t/sites/{site}/ads/connection", headers=ADMIN)
    ).status_code == 204
    await ads.drain()
    row = await ads.upload(site, intent)
    assert (row.status, row.reason) == ("not_eligible", "not_connected")
    assert ads.google.uploads() == [] and await ads.queued() == []
    await ads.connect(site)
    await ads.drain()
    assert (await ads.upload(site, intent)).status == "uploaded"
    assert (await ads.connection_row(site)).flush_key is None
