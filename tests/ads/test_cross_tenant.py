"""Another site's Google Ads connection and uploads are 404 to an owner of site A - read,
changed, disconnected or retried - and stay as they were; nothing of B's leaks into answers."""

from __future__ import annotations

from tests.ads.conftest import AdsRig
from tests.tracking.people_rig import ADMIN

B_CUSTOMER = "987-654-3210"
B_CLICK = "gclid-of-tenant-b"


async def test_site_b_ads_are_not_found_for_the_owner_of_a(ads: AdsRig) -> None:
    a = await ads.site("Tenant A")
    b = await ads.site("Tenant B")
    owner_a = await ads.rig.signed_in(a, "owner-a@example.com", "owner")
    await ads.connect(a, customer="111-222-3333")
    await ads.connect(b, customer=B_CUSTOMER, action="424242")
    ads.google.fail_click(B_CLICK, "EXPIRED_EVENT")
    b_intent = await ads.sale(b, B_CLICK, subject="b-visitor")
    a_intent = await ads.sale(a, "gclid-a", subject="a-visitor")
    await ads.drain()
    b_before = await ads.upload(b, b_intent)
    assert b_before.status == "failed"

    calls = [
        ("GET", f"/t/sites/{b}/ads/connection", None),
        (
            "PUT",
            f"/t/sites/{b}/ads/connection",
            {
                "customer_id": "1112223333",
                "conversion_action": "1",
                "refresh_token": "1//attacker-token",
            },
        ),
        ("DELETE", f"/t/sites/{b}/ads/connection", None),
        ("GET", f"/t/sites/{b}/ads/uploads", None),
        ("GET", f"/t/sites/{b}/ads/uploads?status=failed", None),
        ("GET", f"/t/sites/{b}/ads/summary", None),
        ("GET", f"/t/sites/{b}/ads/uploads/{b_intent}", None),
        ("POST", f"/t/sites/{b}/ads/uploads/{b_intent}/retry", None),
        # B's intent under A's own site
        ("GET", f"/t/sites/{a}/ads/uploads/{b_intent}", None),
        ("POST", f"/t/sites/{a}/ads/uploads/{b_intent}/retry", None),
    ]
    for method, url, body in calls:
        answer = await ads.client.request(method, url, json=body, headers=owner_a)
        assert answer.status_code == 404, (method, url, answer.text)
        for marker in ("9876543210", "424242", B_CLICK, f"kervan-{b}-"):
            assert marker not in answer.text, (method, url, marker)

    # A's own lists hold A's only.
    listed = await ads.client.get(f"/t/sites/{a}/ads/uploads", headers=owner_a)
    assert [i["intent_id"] for i in listed.json()["items"]] == [a_intent]
    summary = await ads.client.get(f"/t/sites/{a}/ads/summary", headers=owner_a)
    assert summary.json()["total"] == 1 and summary.json()["failed"] == 0
    # B is as it was.
    connection = (await ads.client.get(f"/t/sites/{b}/ads/connection", headers=ADMIN)).json()
    assert (connection["customer_id"], connection["connected_by"]) == (
        "9876543210",
        "admin:api-key",
    )
    after = await ads.upload(b, b_intent)
    assert (after.status, after.attempts, after.updated_at) == (
        "failed",
        b_before.attempts,
        b_before.updated_at,
    )
