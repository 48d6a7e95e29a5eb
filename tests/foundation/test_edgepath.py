"""The compiled edge pieces (``native/_edgepath.pyx``) against their plain-Python oracle
(``tests/reference/edgepath_ref.py``): access log lines byte for byte, timestamps, counters."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from native.edgepath import (
    HTTP_LATENCY_BUCKETS,
    AccessLines,
    HeldReply,
    monotonic,
    observe,
    peer_host,
    timestamp,
    valid_request_id,
)
from service.edge import VALID_REQUEST_ID
from service.fast_routes import FastReply
from service.rsgi.scope import peer_host as python_peer_host
from tests.reference import edgepath_ref as ref

texts = st.text(max_size=40) | st.text(
    alphabet=st.sampled_from('ab/"\\\n\r\t\x00\x01\x1f\x7f %é€😀'), max_size=20
)
# Valid UTF-8 only: paths and fields come from granian (Rust strings) or ASGI's decoded bytes.
safe_texts = texts.filter(lambda t: not re.search("[\ud800-\udfff]", t))
elapsed = st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.sampled_from(
    [0.0, 0.0005, 0.0004999, 0.0015, 1.0, 2.5e-7, 0.1234565, 12.3455]
)


def _ts_of(line: bytes) -> str:
    return str(orjson.loads(line)["ts"])


@settings(max_examples=400)
@given(
    method=st.sampled_from(["GET", "POST", "OPTIONS"]) | safe_texts,
    path=safe_texts,
    route=safe_texts,
    status=st.integers(min_value=100, max_value=599),
    seconds=elapsed,
    ip=safe_texts,
    request_id=safe_texts,
)
def test_an_access_line_is_what_orjson_wrote(
    method: str, path: str, route: str, status: int, seconds: float, ip: str, request_id: str
) -> None:
    lines = AccessLines()
    size = lines.record(method, path, route, status, seconds, ip, request_id)
    line = lines.take()
    assert size == len(line)
    expected = ref.access_line(_ts_of(line), method, path, route, status, seconds, ip, request_id)
    assert line == expected
    assert lines.size == 0 and lines.take() == b""


def test_lines_are_buffered_in_order_with_others_between() -> None:
    lines = AccessLines()
    lines.record("GET", "/a", "/a", 200, 0.001, "127.0.0.1", "r1")
    lines.add(b'{"x":1}\n')
    lines.record("GET", "/b", "/b", 404, 0.002, "::1", "r2")
    parsed = [orjson.loads(line) for line in lines.take().splitlines()]
    assert [p.get("path") for p in parsed] == ["/a", None, "/b"]
    assert parsed[2]["client_ip"] == "::1" and parsed[2]["status"] == 404


def test_the_line_time_is_now() -> None:
    lines = AccessLines()
    before = time.time_ns() // 1_000_000
    lines.record("GET", "/", "/", 200, 0.0, "", "")
    after = time.time_ns() // 1_000_000
    ts = _ts_of(lines.take())
    assert ts in {ref.timestamp(ms) for ms in range(before, after + 1)}


# 1970 to 2200: beyond, the oracle's float seconds lose the millisecond (the kernel does not).
@settings(max_examples=400)
@given(ms=st.integers(min_value=0, max_value=7_258_118_400_000))
def test_timestamps_are_datetimes_isoformat(ms: int) -> None:
    assert timestamp(ms) == ref.timestamp(ms)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST"]),
            st.sampled_from(["/a", "/b", "<unmatched>"]),
            st.sampled_from([200, 304, 429, 500]),
            elapsed | st.sampled_from(list(HTTP_LATENCY_BUCKETS)),
        ),
        max_size=60,
    )
)
def test_counts_are_the_bisect_histogram(requests: list[tuple[str, str, int, float]]) -> None:
    compiled: tuple[dict[Any, Any], dict[Any, Any]] = ({}, {})
    expected: tuple[dict[Any, Any], dict[Any, Any]] = ({}, {})
    for method, route, status, seconds in requests:
        observe(*compiled, method, route, status, seconds)
        ref.observe(*expected, method, route, status, seconds)
    assert compiled == expected


def test_the_buckets_are_the_oracles() -> None:
    assert HTTP_LATENCY_BUCKETS == ref.BUCKETS


def test_the_clock_is_perf_counters() -> None:
    first, mine, last = time.perf_counter(), monotonic(), time.perf_counter()
    assert first <= mine <= last


# Values on and next to a tie of the third decimal of a millisecond, and large ones: where a
# shortcut to Python's correctly rounded round() would go wrong first.
ties = st.integers(min_value=0, max_value=10**12).flatmap(
    lambda u: st.sampled_from(
        [
            (u + 0.5) / 1e6,
            math.nextafter((u + 0.5) / 1e6, 0),
            math.nextafter((u + 0.5) / 1e6, math.inf),
            u / 1e6,
            u / 7e3,
        ]
    )
)


@settings(max_examples=3000)
@given(seconds=ties | st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_durations_round_as_python_rounds(seconds: float) -> None:
    lines = AccessLines()
    lines.record("GET", "/", "/", 200, seconds, "", "")
    assert orjson.loads(lines.take())["duration_ms"] == round(seconds * 1000, 3)
    lines.record("GET", "/", "/", 200, seconds, "", "")
    line = lines.take()
    assert line == ref.access_line(_ts_of(line), "GET", "/", "/", 200, seconds, "", "")


def test_a_held_reply_checks_its_increments() -> None:
    reply = FastReply(200, [(b"etag", b'"x"')], b"{}")
    held = HeldReply({}, "k", "v", reply, [0, 0], (1, 2))
    assert held.reply is reply and held.increments == (1, 2)
    with pytest.raises(ValueError, match="more increments"):
        HeldReply({}, "k", "v", reply, [0], (1, 2))
    with pytest.raises(TypeError, match="ints"):
        HeldReply({}, "k", "v", reply, [0, 0], (1, 2.0))  # type: ignore[arg-type]


@settings(max_examples=500)
@given(
    st.text(max_size=140)
    | st.text(alphabet=st.sampled_from("aZ09._:- /é\n"), min_size=0, max_size=130)
)
def test_request_ids_are_judged_as_the_edge_judges_them(text: str) -> None:
    # "0\n" once passed the Python edge's "^...$" pattern; both now match the whole text.
    assert valid_request_id(text) is bool(VALID_REQUEST_ID.fullmatch(text))


@given(
    st.sampled_from(["127.0.0.1:80", "[::1]:8000", "[2001:db8::1]:1", "host:1", ":5", "", "x"])
    | st.text(max_size=30)
)
def test_peer_hosts_are_the_python_paths(client: str) -> None:
    assert peer_host(client) == python_peer_host(client)
