"""Owners retry a failed upload once its cause is fixed; a cause still there is refused."""

from __future__ import annotations

from typing import Any

from tests.ads.conftest import AdsRig
from tests.tracking.people_rig import ADMIN


async def _retry(ads: AdsRig, site: int, intent: int, headers: dict[str, str] = ADMIN) -> Any:
    return await ads.client.post(f"/t/sites/{site}/ads/uploads/{intent}/retry", headers=headers)


async def test_a_failed_upload_is_retried_after_its_cause_is_fixed(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    ads.google.fail_click("gclid-bad-action", "NO_CONVERSION_ACTION_FOUND")
    intent = await ads.sale(site, "gclid-bad-action")
    await ads.drain()
    row = await ads.upload(site, intent)
    assert (row.status, row.reason) == ("failed", "NO_CONVERSION_ACTION_FOUND")

    viewer = await ads.rig.signed_in(site, "viewer@example.com", "viewer")
    assert (await _retry(ads, site, intent, viewer)).status_code == 403
    # The owner fixes the conversion action, then retries.
    await ads.connect(site, action="12345", token=None)
    answer = await _retry(ads, site, intent)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["status"], body["reason"], body["attempts"]) == ("pending", None, 0)
    assert [e["outcome"] for e in body["attempts_log"]] == ["failed"]
    await ads.drain()
    row = await ads.upload(site, intent)
    assert (row.status, row.attempts) == ("uploaded", 1)
    sent = ads.google.uploads()[-1]["body"]["conversions"][0]
    assert sent["conversionAction"].endswith("/conversionActions/12345")
    assert ads.google.accepted == {f"kervan-{site}-{intent}": 1}
    [audit] = await ads.rig.audit("ads.upload_retried")
    assert audit["details"] == {
        "intent": intent,
        "from": "failed",
        "reason": "NO_CONVERSION_ACTION_FOUND",
    }

    again = await _retry(ads, site, intent)
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_retryable"


async def test_a_cause_still_there_is_refused(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    intent = await ads.visit(site, gclid="gclid-1", subject="shy", consent="denied")
    await ads.seal(site, intent)
    refused = await _retry(ads, site, intent)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_eligible"
    assert refused.json()["error"]["details"] == {"reason": "ads_consent_denied"}
    assert (await ads.upload(site, intent)).status == "not_eligible"
    assert await ads.queued() == []

    await ads.consent("shy", "granted")  # the visitor changed their mind
    assert (await _retry(ads, site, intent)).status_code == 200
    await ads.drain()
    assert (await ads.upload(site, intent)).status == "uploaded"


async def test_what_cannot_be_retried(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    unsealed = await ads.visit(site, gclid="gclid-1")
    answer = await _retry(ads, site, unsealed)
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_sealed"
    pending = await ads.sale(site, "gclid-2", subject="two")
    answer = await _retry(ads, site, pending)
    assert answer.status_code == 409 and answer.json()["error"]["details"] == {"status": "pending"}
    assert (await _retry(ads, site, 999_999)).status_code == 404
