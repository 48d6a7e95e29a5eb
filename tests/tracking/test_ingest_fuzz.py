"""Random and malformed batches at ``POST /t/sync``: never a 500, every 200 answers each
event, and never a partial write of one event: the stored events are exactly the ones some
answer accepted, each once, each with its dedup row, and every intent has its event.

Hypothesis drives a synchronous test, so the app runs on an event loop in a helper thread for
the whole test and each example is submitted to it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.clock import ManualClock
from service.db import Database
from service.db.tables.tracking import track_event_ids, track_events, track_intents
from service.settings import Settings
from service.tracking.access import script_scope
from service.tracking.scope import where_site
from service.tracking.sites import Site
from tests.conftest import running_client
from tests.tracking.ingest_support import NOW, ORIGIN, USER_AGENT, new_site

T = TypeVar("T")

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=10,
)


def _mostly(
    good: st.SearchStrategy[Any], *broken: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten, else one of ``broken``."""
    return st.integers(min_value=1, max_value=10).flatmap(
        lambda n: st.one_of(*broken) if n == 10 else good
    )


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``value``; sometimes left out (None here, dropped later) or any JSON."""
    return _mostly(value, st.none(), JSON)


#: A small pool, so that ids repeat within and across batches.
IDS = st.one_of(
    st.integers(min_value=0, max_value=10**9).map(lambda n: f"fuzz-id-{n:010d}"),
    st.sampled_from([f"fuzz-id-pool-{n}" for n in range(10)]),
)
URLS = st.sampled_from(
    [
        "https://example.com/",
        "https://example.com/urun/1?gclid=G1&wbraid=W1",
        "https://example.com/iletisim?utm_source=a&utm_campaign=b",
        "https://example.com/" + "p" * 600,
    ]
)
URL_OK = "https://example.com/"
BAD_URLS = st.sampled_from(["http://[::1/", "ftp://example.com/x"]) | st.text(max_size=30)
TARGETS = _mostly(
    st.sampled_from(
        [
            "tel:+905551112233",
            "tel:0555 111 22 33",
            "https://wa.me/905551112233",
            "https://chat.whatsapp.com/AbCdEf123456",
            "whatsapp://send?phone=%2B4917012345678",
        ]
    ),
    st.just("tel:"),
    st.text(max_size=20),
)
REFS = _mostly(st.sampled_from(["K7X2QW", "ABCDEF", "QWERTY"]), st.just("k7x2qw"), JSON)


EVENT = st.fixed_dictionaries(
    {
        "id": _maybe(_mostly(IDS, st.text(max_size=70))),
        "type": _mostly(
            st.sampled_from(["page_view", "click", "intent", "custom"]), st.just("other"), JSON
        ),
        "ts": _mostly(
            st.floats(min_value=(NOW - 3600) * 1000, max_value=(NOW + 600) * 1000),
            st.floats(min_value=(NOW - 8 * 86_400) * 1000, max_value=(NOW + 600) * 1000),
            JSON,
        ),
        "url": _maybe(_mostly(URLS, BAD_URLS)),
        "title": _maybe(st.text(max_size=50)),
        "referrer": _maybe(st.sampled_from(["https://www.google.com/", "https://example.com/a"])),
        "name": _mostly(
            st.sampled_from(["cta", "form_submit", "Ürün ekle"]), st.text(max_size=70), JSON
        ),
        "props": _mostly(st.dictionaries(st.text(max_size=6), SCALARS, max_size=3), JSON),
        "intent": _maybe(
            st.fixed_dictionaries(
                {"kind": st.sampled_from(["phone", "whatsapp", "fax"]), "target": TARGETS},
                optional={"ref": REFS},
            )
        ),
    }
).map(lambda e: {k: v for k, v in e.items() if v is not None})

EVENTS = _mostly(st.lists(_mostly(EVENT, JSON), min_size=1, max_size=12), st.just([]))


@st.composite
def bodies(draw: Any) -> tuple[bytes, str | None]:
    """A request body and an Idempotency-Key: mostly a batch, sometimes garbage."""
    shape = draw(st.integers(min_value=0, max_value=9))
    if shape == 0:
        return draw(st.binary(max_size=40)), None
    if shape == 1:
        return _dumps(draw(JSON)), None
    body: dict[str, Any] = {
        "site": "SITE",
        "visitor": draw(st.sampled_from(["v_fuzzvisitor00000001", "v_fuzzvisitor00000002"])),
        "events": draw(EVENTS),
        "sent_at": draw(_mostly(st.sampled_from([None, NOW * 1000]), JSON)),
        "context": draw(
            _mostly(
                st.sampled_from(
                    [None, {"url": "https://example.com/", "user_agent_hint": "mobile"}]
                ),
                JSON,
            )
        ),
        "landing": draw(
            _mostly(st.sampled_from([None, {"url": "https://example.com/?gclid=L1"}]), JSON)
        ),
        "consent": draw(_mostly(st.sampled_from([None, {"subject": "anon_fuzz"}]), JSON)),
    }
    if shape == 2:
        body[draw(st.sampled_from(sorted(body)))] = draw(JSON)
    key = draw(
        _mostly(
            st.one_of(st.none(), st.none(), st.integers(0, 10**9).map(lambda n: f"key-{n}")),
            st.sampled_from(["key-reused", "bad key"]),
        )
    )
    return _dumps({k: v for k, v in body.items() if v is not None}), key


def _dumps(value: Any) -> bytes:
    # The standard library writes integers past 64 bits too (orjson refuses them).
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


#: Always tried: every kind of event, stored, with a repeat and a rejected neighbour.
_WELL_FORMED = {
    "site": "SITE",
    "visitor": "v_fuzzvisitor00000003",
    "sent_at": NOW * 1000,
    "landing": {"url": "https://example.com/?gclid=L1"},
    "events": [
        {"id": "fuzz-ok-001", "type": "page_view", "ts": NOW * 1000 - 9, "url": URL_OK},
        {"id": "fuzz-ok-002", "type": "click", "ts": NOW * 1000 - 8, "url": URL_OK, "name": "a"},
        {
            "id": "fuzz-ok-003",
            "type": "intent",
            "ts": NOW * 1000 - 7,
            "url": URL_OK,
            "intent": {"kind": "whatsapp", "target": "https://wa.me/905551112233", "ref": "FUZZ22"},
        },
        {"id": "fuzz-ok-001", "type": "click", "ts": NOW * 1000, "url": URL_OK},
        {"id": "fuzz-ok-004", "type": "custom", "ts": NOW * 1000, "url": URL_OK, "props": {}},
        {"id": "fuzz-ok-005", "type": "custom", "ts": NOW * 1000, "url": URL_OK, "name": "n"},
    ],
}


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class Fuzzed:
    def __init__(self, runner: LoopThread, client: httpx.AsyncClient, site: Site, db: Database):
        self.runner = runner
        self.client = client
        self.site = site
        self.db = db
        self.accepted: Counter[str] = Counter()


@pytest.fixture(params=["sqlite", "mariadb"])
def fuzzed(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], tmp_path: Any
) -> Iterator[Fuzzed]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    else:
        url = request.getfixturevalue("mariadb_url")
    runner = LoopThread()
    manager = running_client(make_settings(database_url=url), clock=ManualClock(NOW))
    client = runner.run(manager.__aenter__())
    db = Database(url)
    try:
        site = runner.run(new_site(db))
        yield Fuzzed(runner, client, site, db)
    finally:
        runner.run(db.dispose())
        runner.run(manager.__aexit__(None, None, None))
        runner.close()


async def _post(f: Fuzzed, raw: bytes, key: str | None) -> httpx.Response:
    headers = {"Origin": ORIGIN, "User-Agent": USER_AGENT, "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = raw.replace(b'"SITE"', orjson.dumps(f.site.public_key))
    return await f.client.post("/t/sync", content=body, headers=headers)


async def _stored(f: Fuzzed) -> tuple[list[str], list[str], list[str]]:
    scope = script_scope(f.site)
    async with f.db.connect() as conn:
        events = [
            r[0]
            for r in await conn.execute(
                select(track_events.c.event_id).where(where_site(track_events, scope))
            )
        ]
        ids = [
            r[0]
            for r in await conn.execute(
                select(track_event_ids.c.event_id).where(where_site(track_event_ids, scope))
            )
        ]
        stamps = [
            r[0]
            for r in await conn.execute(
                select(track_intents.c.stamp).where(where_site(track_intents, scope))
            )
        ]
    return events, ids, stamps


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=bodies())
@example(generated=(_dumps(_WELL_FORMED), None))
def test_random_batches_never_500_and_never_write_part_of_an_event(
    fuzzed: Fuzzed, generated: tuple[bytes, str | None]
) -> None:
    raw, key = generated
    answer = fuzzed.runner.run(_post(fuzzed, raw, key))
    assert answer.status_code < 500, answer.text
    event(f"HTTP {answer.status_code}")
    if answer.status_code == 200:
        sent = json.loads(raw)
        body = answer.json()
        results = body["results"]
        assert len(results) == len(sent["events"])
        assert body["accepted"] + body["duplicates"] + body["rejected"] == len(results)
        event("some accepted" if body["accepted"] else "none accepted")
        if answer.headers.get("idempotent-replayed") != "true":
            fuzzed.accepted.update(r["id"] for r in results if r["outcome"] == "accepted")
    else:
        assert set(answer.json()["error"]) >= {"code", "message"}
    events, ids, stamps = fuzzed.runner.run(_stored(fuzzed))
    # Each event stored once, with its dedup row, exactly the ones the answers accepted.
    assert Counter(events) == fuzzed.accepted
    assert sorted(ids) == sorted(events)
    assert set(stamps) <= set(events)
