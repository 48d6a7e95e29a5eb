"""Flow ingestion, edge import/listing and the rules endpoint, through the HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.backends import keys
from service.settings import Settings
from service.speculation.cache import SpeculationCache
from service.speculation.metrics import RULES as SERVED
from tests.speculation import rules_syntax

ADMIN = {"X-API-Key": "test-admin-key"}
ORIGIN = "https://example.com"

MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> AsyncIterator[httpx.AsyncClient]:
    # The global per-IP limit is off here: these tests send many requests from one address
    # (the ingestion's own limit is tested below).
    settings = make_settings(
        public_origin=ORIGIN, speculation_refresh_seconds=3600, ratelimit_default_policy=""
    )
    async with make_client(settings) as c:
        yield c


async def edges(client: httpx.AsyncClient, seg: str = "en-d") -> dict[tuple[str, str], Any]:
    r = await client.get("/flows/edges", params={"seg": seg}, headers=ADMIN)
    assert r.status_code == 200, r.text
    return {(e["from"], e["to"]): e for e in r.json()["edges"]}


def nav(a: str, b: str, seg: str = "en-d") -> dict[str, str]:
    return {"seg": seg, "from": a, "to": b}


async def test_navigation_events_are_counted_with_exact_probabilities(
    client: httpx.AsyncClient,
) -> None:
    batch = [
        nav("/", "/en/projects/"),
        nav(ORIGIN + "/", "/en/projects?x=1"),
        nav("/", "/en/about"),
        nav("/en/about", "/en/about#team"),  # a reload after normalization: ignored
    ]
    r = await client.post("/flows/events", json={"events": batch})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 4, "transitions": 3, "ignored": 1}
    assert "ingest.ip" in r.headers["RateLimit-Policy"]
    r = await client.post("/flows/events", json={"events": [nav("/", "/en/contact")]})
    assert r.status_code == 200
    got = await edges(client)
    assert {k: v["count"] for k, v in got.items()} == {
        ("/", "/en/projects"): 2,
        ("/", "/en/about"): 1,
        ("/", "/en/contact"): 1,
    }
    assert {k: v["probability"] for k, v in got.items()} == {
        ("/", "/en/projects"): 0.5,
        ("/", "/en/about"): 0.25,
        ("/", "/en/contact"): 0.25,
    }


async def test_an_invalid_batch_is_refused_whole_with_every_index(
    client: httpx.AsyncClient,
) -> None:
    batch: list[Any] = [
        nav("/", "/ok"),
        nav("/", "/x", seg="xx-d"),
        {"seg": "en-d", "from": "https://evil.example/a", "to": "/b"},
        nav("/", "/fine"),
        "not an object",
        {"session_id": "short", "seg": "en-d", "path": "/", "ts": time.time()},
        {"seg": "en-d", "from": "/", "to": "/b", "extra": 1},
    ]
    r = await client.post("/flows/events", json={"events": batch})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_failed"
    assert [d["index"] for d in err["details"]] == [1, 2, 4, 5, 6]
    assert await edges(client) == {}


@pytest.mark.parametrize(
    "body",
    [{"events": [nav("/", "/a")] * 1001}, {"events": "nope"}, [nav("/", "/a")], {}],
    ids=["too-many", "not-a-list", "bare-list", "empty-object"],
)
async def test_malformed_batches_get_422(client: httpx.AsyncClient, body: Any) -> None:
    r = await client.post("/flows/events", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_failed"


async def test_malformed_json_gets_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/flows/events", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400


async def test_page_views_are_paired_per_session_across_batches(
    client: httpx.AsyncClient,
) -> None:
    base = time.time() - 3600

    def view(session: str, path: str, ts: float, seg: str = "en-d") -> dict[str, Any]:
        return {"session_id": session, "seg": seg, "path": path, "ts": base + ts}

    first = [view("sess-aaaa", "/", 1000.0), view("sess-bbbb", "/", 1000.0)]
    r = await client.post("/flows/events", json={"events": first})
    assert r.status_code == 200 and r.json()["transitions"] == 0
    second = [
        view("sess-aaaa", "/en/contact", 1020.0),  # given out of order within the batch
        view("sess-aaaa", "/en/projects", 1010.0),
        view("sess-bbbb", "/en/projects", 999.0),  # older than the stored view: too late
        view("sess-cccc", "/en/about", 1000.0),  # a new session: nothing to pair yet
    ]
    r = await client.post("/flows/events", json={"events": second})
    assert r.status_code == 200
    assert r.json()["transitions"] == 2
    assert set(await edges(client)) == {("/", "/en/projects"), ("/en/projects", "/en/contact")}
    # The session's state moved on: its next view pairs with /en/contact.
    r = await client.post(
        "/flows/events", json={"events": [view("sess-aaaa", "/en/about", 1030.0)]}
    )
    assert ("/en/contact", "/en/about") in await edges(client)
    # A clock far off is refused rather than allowed to pin the session's state.
    for off in (-8 * 86_400.0, 3600 + 600.0):
        r = await client.post(
            "/flows/events", json={"events": [view("sess-aaaa", "/x", 3600 + off)]}
        )
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "ts"


async def test_edge_import_adds_or_replaces_and_needs_admin(client: httpx.AsyncClient) -> None:
    body = {
        "seg": "tr-m",
        "edges": [
            {"from": "/", "to": "/tr/projects", "count": 30},
            {"from": "/", "to": "/tr/about", "count": 10},
            {"from": "/", "to": "/tr/projects/", "count": 10},  # same edge once normalized
        ],
    }
    assert (await client.post("/flows/edges", json=body)).status_code == 401
    r = await client.post("/flows/edges", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    got = await edges(client, "tr-m")
    assert {k: (v["count"], v["probability"]) for k, v in got.items()} == {
        ("/", "/tr/projects"): (40, 0.8),
        ("/", "/tr/about"): (10, 0.2),
    }
    r = await client.post(
        "/flows/edges",
        json={"seg": "tr-m", "replace": True, "edges": [{"from": "/", "to": "/tr/x", "count": 3}]},
        headers=ADMIN,
    )
    assert r.status_code == 200
    got = await edges(client, "tr-m")
    assert {k: v["probability"] for k, v in got.items()} == {("/", "/tr/x"): 1.0}
    r = await client.post(
        "/flows/edges",
        json={"seg": "tr-m", "edges": [{"from": "/", "to": "/y", "count": 0}, {"from": "bad"}]},
        headers=ADMIN,
    )
    assert r.status_code == 422
    assert [d["index"] for d in r.json()["error"]["details"]] == [0, 1]
    assert len(await edges(client, "tr-m")) == 1


async def test_edge_listing_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    body = {"seg": "de-d", "edges": [{"from": "/", "to": f"/de/{i}", "count": 1} for i in range(5)]}
    assert (await client.post("/flows/edges", json=body, headers=ADMIN)).status_code == 200
    seen: list[str] = []
    params: dict[str, Any] = {"seg": "de-d", "limit": 2}
    while True:
        r = await client.get("/flows/edges", params=params, headers=ADMIN)
        assert r.status_code == 200
        page = r.json()
        seen += [e["to"] for e in page["edges"]]
        if page["next"] is None:
            break
        params.update(page["next"])
    assert seen == [f"/de/{i}" for i in range(5)]
    r = await client.get("/flows/edges", params={"seg": "de-d", "after_from": "/"}, headers=ADMIN)
    assert r.status_code == 422


async def test_rules_for_a_segment_without_data_are_empty(client: httpx.AsyncClient) -> None:
    r = await client.get("/perf/speculation/dynamic", params={"seg": "de-m"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/speculationrules+json"
    assert r.json() == {"prerender": [], "prefetch": []}


@pytest.mark.parametrize("seg", ["", "EN-D", "en", "xx-d", "en-d-extra"])
async def test_invalid_or_unknown_segments_get_422(client: httpx.AsyncClient, seg: str) -> None:
    r = await client.get("/perf/speculation/dynamic", params={"seg": seg})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_failed"
    r = await client.get("/perf/speculation/dynamic")
    assert r.status_code == 422


async def _load_site(client: httpx.AsyncClient) -> None:
    edges_in = [
        ("/", "/en/projects", 50),
        ("/", "/en/about", 20),
        ("/", "/logout", 30),
        ("/en/projects", "/en/projects/kervan", 60),
        ("/en/projects", "/en/projects/atlas", 25),
        ("/en/projects", "/en/cart", 15),
        ("/en/projects/kervan", "/en/contact", 10),
        ("/en/about", "/en/team", 5),
        ("/en/team", "/en/jobs", 5),
        ("/en/contact", "/en/imprint", 1),
    ]
    body = {"seg": "en-d", "edges": [{"from": a, "to": b, "count": n} for a, b, n in edges_in]}
    assert (await client.post("/flows/edges", json=body, headers=ADMIN)).status_code == 200


async def settled_rules(client: httpx.AsyncClient, mode: str = "montecarlo") -> httpx.Response:
    """The rules once the refresh that the import triggered has landed."""
    for _ in range(200):
        r = await client.get("/perf/speculation/dynamic", params={"seg": "en-d", "mode": mode})
        if r.status_code != 200 or r.json()["prerender"]:
            return r
        await asyncio.sleep(0.05)
    return r


async def test_rules_follow_the_flows_with_etag_and_cache_headers(
    client: httpx.AsyncClient,
) -> None:
    await _load_site(client)
    r = await settled_rules(client)
    assert r.status_code == 200
    rules = r.json()
    prerender, prefetch = (rules_syntax.targets(rules[a]) for a in ("prerender", "prefetch"))
    assert len(prerender) == 2 and len(prefetch) == 6
    assert rules_syntax.problems(rules) == []
    # Exact scores: contact 0.45, kervan 0.45, imprint 0.3, projects 0.25, atlas 0.19, ...
    assert set(prerender) == {ORIGIN + "/en/contact", ORIGIN + "/en/projects/kervan"}
    assert prefetch[:3] == [
        ORIGIN + "/en/imprint",
        ORIGIN + "/en/projects",
        ORIGIN + "/en/projects/atlas",
    ]
    everything = rules["prerender"] + rules["prefetch"]
    assert all(rule["where"]["and"][1]["not"]["href_matches"] for rule in everything)
    listed = set(prerender + prefetch)
    assert ORIGIN + "/logout" not in listed and ORIGIN + "/en/cart" not in listed
    assert all(rule["tag"].startswith("kervan-en-d-s") for rule in everything)
    # One rule per score bucket: fewer rules than routes, every tag once per action.
    for action in ("prerender", "prefetch"):
        tags = [rule["tag"] for rule in rules[action]]
        assert len(tags) == len(set(tags))
    assert len(everything) < 8
    etag = r.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert r.headers["cache-control"] == "public, max-age=60"
    again = await client.get(
        "/perf/speculation/dynamic", params={"seg": "en-d"}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
    before = list(SERVED.of("en-d"))
    other = await client.get(
        "/perf/speculation/dynamic", params={"seg": "en-d"}, headers={"If-None-Match": '"x"'}
    )
    assert other.status_code == 200 and other.content == r.content
    # The metrics count routes speculated on, not rules: 2 prerendered, 6 prefetched.
    assert SERVED.of("en-d")[2:] == [before[2] + 2, before[3] + 6]


async def test_exact_mode_and_background_refresh(client: httpx.AsyncClient) -> None:
    await _load_site(client)
    mc = await settled_rules(client)
    exact = await settled_rules(client, "exact")
    assert exact.status_code == 200

    def order(r: httpx.Response) -> list[str]:
        rules = r.json()
        return rules_syntax.targets(rules["prerender"]) + rules_syntax.targets(rules["prefetch"])

    # Well separated below the tied pair at the top.
    assert set(order(mc)[:2]) == set(order(exact)[:2])
    assert order(mc)[2:5] == order(exact)[2:5]
    # Ingested events are not seen until the refresher's next round; then the answer (and its
    # ETag) changes.
    events = [nav("/", "/en/new")] * 1000
    assert (await client.post("/flows/events", json={"events": events})).status_code == 200
    stale = await client.get("/perf/speculation/dynamic", params={"seg": "en-d"})
    assert stale.headers["etag"] == mc.headers["etag"]
    cache = client.app.state.runtime.facility(SpeculationCache)  # type: ignore[attr-defined]
    for _ in range(100):  # a round of the app's own refresher may hold the lock right now
        await cache.refresh_all()
        fresh = await client.get("/perf/speculation/dynamic", params={"seg": "en-d"})
        if fresh.headers["etag"] != mc.headers["etag"]:
            break
        await asyncio.sleep(0.05)
    assert fresh.headers["etag"] != mc.headers["etag"]
    assert order(fresh)[0] == ORIGIN + "/en/new"
    metrics = (await client.get("/metrics")).text
    assert 'kervan_speculation_cache_age_seconds{mode="montecarlo",seg="en-d"}' in metrics
    assert 'kervan_speculation_rules_served_total{action="prerender",seg="en-d"}' in metrics
    assert "kervan_speculation_simulation_seconds_count" in metrics


async def test_ingestion_is_rate_limited(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = make_settings(ratelimit_policies="ingest.ip=2/minute burst 2")
    async with make_client(settings) as client:
        codes = [
            (await client.post("/flows/events", json={"events": [nav("/", "/a")]})).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        got = await edges(client)
        assert got[("/", "/a")]["count"] == 2


async def test_a_bulk_import_is_served_without_waiting_for_the_next_round(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/perf/speculation/dynamic", params={"seg": "en-d"})
    assert first.json() == {"prerender": [], "prefetch": []}
    await _load_site(client)
    for _ in range(100):
        r = await client.get("/perf/speculation/dynamic", params={"seg": "en-d"})
        if r.json()["prerender"]:
            break
        await asyncio.sleep(0.05)
    assert r.headers["etag"] != first.headers["etag"]
    assert len(rules_syntax.targets(r.json()["prerender"])) == 2


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_event = st.fixed_dictionaries(
    {},
    optional={
        "seg": st.sampled_from(["en-d", "tr-m", "xx-d", ""]) | st.text(max_size=10),
        "from": st.sampled_from(["/", "/a", "https://example.com/b", "x"]) | _json,
        "to": st.sampled_from(["/c", "/a/"]) | st.text(max_size=30),
        "session_id": st.sampled_from(["sess-1234", "s"]) | _json,
        "path": st.sampled_from(["/", "/p"]) | _json,
        "ts": st.sampled_from([time.time(), 1.7e9, -1, 1e300]) | _json,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(_event | _json, max_size=6))
async def test_arbitrary_batches_never_fail_or_half_store(
    client: httpx.AsyncClient, events: list[Any]
) -> None:
    before = await edges(client)
    r = await client.post("/flows/events", json={"events": events})
    assert r.status_code in (200, 422), r.text
    after = await edges(client)
    if r.status_code == 422:
        assert after == before
        assert all("index" in d for d in r.json()["error"]["details"])
    else:
        added = sum(v["count"] for v in after.values()) - sum(v["count"] for v in before.values())
        assert added == r.json()["transitions"]


async def test_openapi_documents_the_flow_and_rules_endpoints(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    for path in ("/flows/events", "/flows/edges", "/perf/speculation/dynamic"):
        assert path in doc["paths"], path
    rules = doc["paths"]["/perf/speculation/dynamic"]["get"]
    assert "application/speculationrules+json" in rules["responses"]["200"]["content"]
    assert {p["name"] for p in rules["parameters"]} == {"seg", "mode"}


async def test_the_background_refresher_picks_up_new_flows(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = make_settings(public_origin=ORIGIN, speculation_refresh_seconds=1.0)
    async with make_client(settings) as client:
        empty = await client.get("/perf/speculation/dynamic", params={"seg": "tr-d"})
        assert empty.json()["prerender"] == []
        events = [nav("/", "/tr/projects", seg="tr-d"), nav("/tr/projects", "/tr/x", seg="tr-d")]
        assert (await client.post("/flows/events", json={"events": events})).status_code == 200
        for _ in range(100):
            r = await client.get("/perf/speculation/dynamic", params={"seg": "tr-d"})
            if r.json()["prerender"]:
                break
            await asyncio.sleep(0.1)
        assert rules_syntax.targets(r.json()["prerender"])[0].startswith(ORIGIN)


async def test_a_failing_refresh_keeps_serving_the_last_answer(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.errors import StorageError
    from service.speculation import store
    from service.speculation.metrics import REFRESHES

    await _load_site(client)
    cache = client.app.state.runtime.facility(SpeculationCache)  # type: ignore[attr-defined]
    for _ in range(100):
        served = await client.get("/perf/speculation/dynamic", params={"seg": "en-d"})
        if served.json()["prerender"]:
            break
        await asyncio.sleep(0.05)

    async def broken(*_args: Any, **_kwargs: Any) -> int:
        raise StorageError("database is down")

    monkeypatch.setattr(store, "segment_version", broken)
    failed_before = REFRESHES.labels("failed")._value.get()
    await cache.refresh_all()
    assert REFRESHES.labels("failed")._value.get() > failed_before
    again = await client.get("/perf/speculation/dynamic", params={"seg": "en-d"})
    assert again.status_code == 200 and again.content == served.content


async def test_scaled_mode_mariadb_and_redis_end_to_end(
    make_settings: Callable[..., Settings],
    make_client: MakeClient,
    mariadb_url: str,
    redis_url: str,
) -> None:
    settings = make_settings(
        public_origin=ORIGIN,
        database_url=mariadb_url,
        redis_url=redis_url,
        speculation_refresh_seconds=3600,
    )
    now = time.time()
    views = [
        {"session_id": "scaled-0001", "seg": "de-m", "path": p, "ts": now - 60 + i}
        for i, p in enumerate(["/", "/de/projects", "/de/projects/kervan"])
    ]
    async with make_client(settings) as client:
        # Two batches: the session's last page crosses requests through Redis.
        for chunk in (views[:2], views[2:]):
            r = await client.post("/flows/events", json={"events": chunk})
            assert r.status_code == 200, r.text
        got = await edges(client, "de-m")
        assert {k: v["probability"] for k, v in got.items()} == {
            ("/", "/de/projects"): 1.0,
            ("/de/projects", "/de/projects/kervan"): 1.0,
        }
        r = await client.get("/perf/speculation/dynamic", params={"seg": "de-m", "mode": "exact"})
        hrefs = rules_syntax.targets(r.json()["prerender"])
        assert hrefs == [ORIGIN + "/de/projects/kervan", ORIGIN + "/de/projects"]
        backends = client.app.state.runtime.backends  # type: ignore[attr-defined]
        assert backends.kind == "redis"
        cache = client.app.state.runtime.facility(SpeculationCache)  # type: ignore[attr-defined]
        for _ in range(100):  # published by the refresh that holds the Redis lock
            shared = await backends.kv.get(f"{keys.SPECULATION_ANSWER}:de-m:exact")
            if shared is not None:
                break
            await cache.refresh("de-m", "exact")
            await asyncio.sleep(0.05)
        assert shared is not None and b"/de/projects/kervan" in shared
