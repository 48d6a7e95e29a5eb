"""Google Ads offline conversions uploaded per second through the local double
(``tests/ads/google_double.py``, Google's REST wire format), by kervan's real worker.

For each scenario: a fresh database (a throw-away SQLite file, or a throw-away MariaDB database)
with ``--sites`` sites, each connected to its own Google Ads customer and holding
``--conversions / --sites`` sealed sales with granted ads consent - written as the seal writes
them: the upload rows, and the site's upload job. Then a runtime with every
feature set up and its queue worker (concurrency ``--concurrency``) starts, and the clock runs
until every conversion is uploaded (or failed for good). conversions/s = conversions / that time.

Scenarios: the double answering at once (kervan's own ceiling) and in ``--google-latency``
seconds per request (closer to Google); on SQLite also with faults (the first requests answered
500, and 5 % of the clicks ``EXPIRED_EVENT``), which must end with every row settled and no order
id accepted twice.

    .venv/bin/python bench/bench_ads.py [--conversions 10000] [--sites 4] [--concurrency 16]
        [--google-latency 0.5] [--mariadb-url URL] [--no-mariadb]

Prints a table and writes bench/results/ads.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import pymysql  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core.clock import SYSTEM_CLOCK  # noqa: E402
from service.ads.connections import save_connection  # noqa: E402
from service.ads.crypto import TokenCipher  # noqa: E402
from service.ads.flush import ensure_flush  # noqa: E402
from service.ads.wire import order_id  # noqa: E402
from service.consent import store as consent_store  # noqa: E402
from service.consent.policy import policy_from_settings  # noqa: E402
from service.db import Database  # noqa: E402
from service.db.migrate import migrate  # noqa: E402
from service.db.tables.ads import ads_uploads  # noqa: E402
from service.db.tables.tracking import track_intents, track_sessions  # noqa: E402
from service.features import setup_features  # noqa: E402
from service.runtime import build_runtime  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.tracking.scope import ALL_SITES, SiteScope  # noqa: E402
from service.tracking.sites import create_site  # noqa: E402
from tests.ads.google_double import (  # noqa: E402
    CLIENT_ID,
    CLIENT_SECRET,
    DEVELOPER_TOKEN,
    GoogleAdsDouble,
)

TOKEN_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
REFRESH_TOKEN = "1//bench-refresh-token"
SUBJECT = "bench-visitor"


def settings_for(url: str, google: GoogleAdsDouble, tmp: Path, concurrency: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        redis_url=None,
        data_dir=tmp / "data",
        ratelimit_default_policy="",
        queue_concurrency=concurrency,
        queue_poll_interval_seconds=0.05,
        ads_token_key=SecretStr(TOKEN_KEY),
        ads_developer_token=SecretStr(DEVELOPER_TOKEN),
        ads_oauth_client_id=CLIENT_ID,
        ads_oauth_client_secret=SecretStr(CLIENT_SECRET),
        ads_oauth_token_url=google.token_url,
        ads_api_base_url=google.base_url,
        ads_retry_backoff_base_seconds=0.05,
        ads_retry_backoff_cap_seconds=0.5,
    )


async def seed(
    db: Database, settings: Settings, queue: Any, sites: int, per_site: int
) -> tuple[list[int], list[str]]:
    """The sites, their connections, the consent, and the sealed sales with their jobs."""
    now = datetime.now(UTC)
    cipher = TokenCipher(TOKEN_KEY)
    site_ids: list[int] = []
    clicks: list[str] = []
    async with db.begin() as conn:
        await consent_store.record(
            conn,
            SUBJECT,
            {"ads": "granted"},
            source="banner",
            now=time.time(),
            policy=policy_from_settings(settings),
        )
        for n in range(sites):
            site = await create_site(
                conn,
                name=f"Bench {n}",
                domains=[f"bench{n}.example"],
                currency="TRY",
                time_zone="Europe/Istanbul",
                now=now,
            )
            site_ids.append(site.id)
            scope = SiteScope(site_id=site.id, role="owner", actor="bench")
            customer = f"{1000000000 + n}"
            await save_connection(
                conn,
                scope,
                customer_id=customer,
                conversion_action=f"customers/{customer}/conversionActions/7",
                login_customer_id=None,
                token_ciphertext=cipher.encrypt(REFRESH_TOKEN, site_id=site.id),
                now=now,
            )
    for site_id in site_ids:
        async with db.begin() as conn:
            session = await conn.execute(
                insert(track_sessions).values(
                    site_id=site_id,
                    visitor_id="v_benchvisitor000",
                    started_at=now,
                    last_seen_at=now,
                    device="mobile",
                    consent_subject=SUBJECT,
                )
            )
            assert session.inserted_primary_key is not None
            session_id = session.inserted_primary_key[0]
            click = [f"gclid-{site_id}-{k}" for k in range(per_site)]
            clicks += click
            await conn.execute(
                insert(track_intents),
                [
                    {
                        "site_id": site_id,
                        "session_id": session_id,
                        "kind": "phone",
                        "target": "tel:+905551112233",
                        "stamp": f"bench-{k}",
                        "gclid": click[k],
                        "status": "confirmed",
                        "lead_score": 0,
                        "amount": Decimal("150.00"),
                        "currency": "TRY",
                        "sealed_at": now,
                        "sealed_by": "bench",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for k in range(per_site)
                ],
            )
            ids = [
                int(i)
                for i in (
                    await conn.execute(
                        select(track_intents.c.id)
                        .where(track_intents.c.site_id == site_id)
                        .order_by(track_intents.c.id)
                    )
                ).scalars()
            ]
            await conn.execute(
                insert(ads_uploads),
                [
                    {
                        "site_id": site_id,
                        "intent_id": intent,
                        "status": "pending",
                        "order_id": order_id(site_id, intent),
                        "click_kind": "gclid",
                        "click_id": click[k],
                        "consent_subject": SUBJECT,
                        "conversion_at": now,
                        "value": Decimal("150.00"),
                        "currency": "TRY",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for k, intent in enumerate(ids)
                ],
            )
            # The site's upload job, as the first seal queues it.
            scope = SiteScope(site_id=site_id, role="owner", actor="bench")
            await ensure_flush(conn, scope, queue, now=time.time())
    return site_ids, clicks


async def settled(db: Database) -> tuple[int, int]:
    async with db.connect() as conn:
        await conn.execution_options(**ALL_SITES)  # every site's rows: a bench's count
        rows = await conn.execute(
            select(ads_uploads.c.status, func.count()).group_by(ads_uploads.c.status)
        )
        counts = {status: int(n) for status, n in rows}
    return counts.get("uploaded", 0), counts.get("failed", 0)


async def scenario(
    url: str,
    tmp: Path,
    args: argparse.Namespace,
    *,
    latency: float,
    faults: bool,
) -> dict[str, Any]:
    with GoogleAdsDouble() as google:
        google.latency = latency
        settings = settings_for(url, google, tmp, args.concurrency)
        runtime = build_runtime(settings, SYSTEM_CLOCK)
        runtime.worker_wanted = True
        runtime.worker_queues = ["ads.upload"]
        await setup_features(runtime)
        per_site = args.conversions // args.sites
        total = per_site * args.sites
        seeded = time.perf_counter()
        _sites, clicks = await seed(runtime.db, settings, runtime.queue, args.sites, per_site)
        seed_seconds = time.perf_counter() - seeded
        expired = 0
        if faults:
            google.script("500", "500", "500")
            for click in clicks[::20]:
                google.fail_click(click, "EXPIRED_EVENT", times=None)
                expired += 1
        started = time.perf_counter()
        await runtime.start()
        try:
            while True:
                uploaded, failed = await settled(runtime.db)
                if uploaded + failed >= total:
                    break
                if time.perf_counter() - started > args.timeout:
                    raise RuntimeError(f"only {uploaded + failed} of {total} settled")
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            await runtime.close()
        counts = [r["count"] for r in google.uploads() if r["count"]]
        assert max(google.accepted.values()) == 1, "an order id was accepted twice"
        assert failed == expired, (failed, expired)
        return {
            "conversions": total,
            "uploaded": uploaded,
            "failed": failed,
            "seconds": round(elapsed, 3),
            "conversions_per_second": round(total / elapsed, 1),
            "requests": len(google.uploads()),
            "mean_batch": round(sum(counts) / max(1, len(counts)), 1),
            "token_refreshes": len(google.token_requests),
            "google_latency_s": latency,
            "seed_seconds": round(seed_seconds, 2),
        }


async def sqlite_url(tmp: Path) -> str:
    folder = Path(tempfile.mkdtemp(dir=tmp))
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    db = Database(url)
    await migrate(db)
    await db.dispose()
    return url


async def mariadb_url(url: str) -> tuple[str, Callable[[], None]]:
    base = make_url(url)
    name = f"kervan_bench_ads_{uuid.uuid4().hex[:8]}"
    params = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 3306,
        "user": base.username or "root",
        "password": base.password or "",
    }
    conn = pymysql.connect(**params)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    made = base.set(database=name).render_as_string(hide_password=False)
    db = Database(made)
    await migrate(db)
    await db.dispose()

    def drop() -> None:
        c = pymysql.connect(**params)
        with c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        c.close()

    return made, drop


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.disable(logging.WARNING)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        plans: list[tuple[str, float, bool]] = [
            ("instant double", 0.0, False),
            (f"double answering in {args.google_latency:g} s", args.google_latency, False),
        ]
        for label, latency, faults in [*plans, ("instant double, with faults", 0.0, True)]:
            url = await sqlite_url(tmp)
            results[f"sqlite, {label}"] = await scenario(
                url, tmp, args, latency=latency, faults=faults
            )
        if not args.no_mariadb:
            for label, latency, faults in plans:
                url, drop = await mariadb_url(args.mariadb_url)
                try:
                    results[f"mariadb, {label}"] = await scenario(
                        url, tmp, args, latency=latency, faults=faults
                    )
                finally:
                    drop()
    return {
        "bench": "ads",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "sites": args.sites,
        "concurrency": args.concurrency,
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    header = (
        f"{'scenario':46} {'conv/s':>9} {'seconds':>8} {'requests':>8} {'batch':>7} {'failed':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, r in report["results"].items():
        print(
            f"{name:46} {r['conversions_per_second']:>9.1f} {r['seconds']:>8.2f} "
            f"{r['requests']:>8} {r['mean_batch']:>7.1f} {r['failed']:>7}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversions", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--google-latency", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--mariadb-url", default="mariadb+aiomysql://root@127.0.0.1:3306/test")
    parser.add_argument("--no-mariadb", action="store_true")
    args = parser.parse_args()
    report = asyncio.run(main(args))
    print_table(report)
    out = ROOT / "bench" / "results" / "ads.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"\nwrote {out.relative_to(ROOT)}")
