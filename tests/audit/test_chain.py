"""The audit chain in core: hashing, linking, and the walk that finds the first broken link."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.audit.chain import (
    GENESIS,
    PLATFORM_CHAIN,
    AuditRecord,
    ChainHead,
    append,
    chain_of,
    record_hash,
    site_of_subject,
    ts_micros,
    verify_chain,
)
from core.consent.model import GENESIS_HASH

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _chain(site_id: int | None, count: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    head = GENESIS
    for n in range(count):
        record = append(
            head,
            site_id=site_id,
            ts=T0 + timedelta(seconds=n),
            actor="person:1",
            action="site.updated",
            subject=f"site:{site_id}",
            request_id=f"req-{n}",
            details={"n": n},
            before={"name": f"old {n}"},
            after={"name": f"new {n}"},
        )
        records.append(record)
        head = ChainHead(record.seq, record.hash)
    return records


def _head(records: list[AuditRecord]) -> ChainHead:
    return ChainHead(records[-1].seq, records[-1].hash)


def test_records_link_from_the_genesis_hash_in_seq_order() -> None:
    records = _chain(7, 3)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH == "0" * 64
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    assert {r.chain for r in records} == {7}
    report = verify_chain(7, records, _head(records))
    assert report.ok and report.checked == 3 and report.first_break is None


def test_the_hash_is_plain_sha256_over_canonical_json() -> None:
    """An auditor recomputes it from an export without any kervan code or secret."""
    [record] = _chain(3, 1)
    canonical = json.dumps(
        record.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    expected = hashlib.sha256(b"kervan-audit-record-v1\n" + canonical.encode()).hexdigest()
    assert record.hash == expected == record_hash(record)


@pytest.mark.parametrize(
    "field, value",
    [
        ("details", {"n": 99}),
        ("before", {"name": "forged"}),
        ("after", None),
        ("actor", "person:2"),
        ("action", "site.created"),
        ("subject", "site:8"),
        ("request_id", "req-other"),
        ("ts_us", 1),
    ],
)
def test_an_edited_field_is_the_first_broken_link(field: str, value: object) -> None:
    records = _chain(5, 4)
    records[1] = replace(records[1], **{field: value})
    report = verify_chain(5, records, _head(records))
    assert not report.ok
    assert report.first_break is not None
    assert (report.first_break.seq, report.first_break.reason) == (2, "hash_mismatch")
    assert report.checked == 2  # nothing after the break is trusted, or checked


def test_a_removed_record_is_a_gap_at_its_seq() -> None:
    records = _chain(5, 4)
    del records[2]
    report = verify_chain(5, records, _head(records))
    assert report.first_break is not None
    assert (report.first_break.seq, report.first_break.reason) == (3, "sequence_gap")


def test_a_rehashed_edit_breaks_the_next_link() -> None:
    """Who edits a record and recomputes its hash still breaks the record after it."""
    records = _chain(5, 3)
    forged = replace(records[0], details={"n": "forged"})
    records[0] = replace(forged, hash=record_hash(forged))
    report = verify_chain(5, records, _head(records))
    assert report.first_break is not None
    assert (report.first_break.seq, report.first_break.reason) == (2, "prev_hash_mismatch")


def test_removed_newest_records_and_a_rewritten_head_show_against_the_head() -> None:
    records = _chain(5, 4)
    short = verify_chain(5, records[:2], _head(records))
    assert short.first_break is not None
    assert (short.first_break.seq, short.first_break.reason) == (3, "missing_records")
    other = verify_chain(5, records, ChainHead(4, "f" * 64))
    assert other.first_break is not None and other.first_break.reason == "head_mismatch"
    headless = verify_chain(5, records, None)
    assert headless.first_break is not None and headless.first_break.reason == "no_head"
    assert verify_chain(5, [], None).ok  # no records, no head: an empty chain


def test_a_record_of_another_chain_is_refused() -> None:
    records = _chain(5, 2)
    moved = _chain(6, 1)[0]
    report = verify_chain(5, [records[0], moved], _head(records))
    assert report.first_break is not None and report.first_break.reason == "wrong_chain"
    relabelled = replace(records[1], site_id=6)
    report = verify_chain(5, [records[0], relabelled], _head(records))
    assert report.first_break is not None and report.first_break.reason == "wrong_chain"


def test_chains_sites_and_subjects() -> None:
    assert chain_of(None) == PLATFORM_CHAIN == 0
    assert chain_of(12) == 12
    with pytest.raises(ValueError):
        chain_of(0)
    assert site_of_subject("site:12") == 12
    for subject in ("site:0", "site:012", "site:", "site:1x", "person:12", "xsite:1", "site:-1"):
        assert site_of_subject(subject) is None, subject
    platform = append(GENESIS, site_id=None, ts=T0, actor="a", action="b", subject="ip:1")
    assert (platform.chain, platform.site_id, platform.seq) == (0, None, 1)


def test_values_are_stored_as_json_reads_them_back() -> None:
    """Tuples and integer keys come back from a JSON column as lists and strings: the record
    is hashed in that form, so its stored copy verifies."""
    record = append(
        GENESIS,
        site_id=1,
        ts=T0,
        actor="a" * 300,
        action="x" * 100,
        subject="site:1",
        details={"ids": (1, 2), 3: "three"},
    )
    assert record.details == {"ids": [1, 2], "3": "three"}
    assert len(record.actor) == 191 and len(record.action) == 64
    assert record_hash(record) == record.hash


def test_timestamps_are_whole_microseconds_of_any_offset() -> None:
    local = T0.astimezone(timezone(timedelta(hours=3)))
    assert ts_micros(local) == ts_micros(T0) == 1_772_366_400_123_456
    with pytest.raises(ValueError):
        ts_micros(datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        append(
            GENESIS,
            site_id=None,
            ts=T0,
            actor="a",
            action="b",
            subject="c",
            details={"x": float("nan")},
        )
