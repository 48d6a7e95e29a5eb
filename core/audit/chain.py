"""The audit log's hash chains: one per site, one for the platform.

A record's hash is SHA-256 over a domain tag and the canonical JSON of its content, which
includes the hash of the record before it in the same chain (the first links to the consent
log's genesis hash, ``"0" * 64``). Editing, removing or reordering a record breaks the chain at
that record; the chain's head (its last ``seq`` and hash, kept beside the log) exposes removed
newest records. Plain SHA-256 without a kervan secret: an auditor recomputes every hash from an
export alone.

Chains are numbered by the site id; ``PLATFORM_CHAIN`` (0) holds what belongs to no site
(admin sessions, lockouts, dead letters). Per-site chains keep tenants from queueing on one
head: only writers of the same site wait for each other.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from core.consent.model import GENESIS_HASH

PLATFORM_CHAIN = 0
#: The longest values the log keeps; longer ones are cut before hashing, so the stored value
#: and the hashed one are always the same.
ACTOR_CHARS = 191
SUBJECT_CHARS = 191
ACTION_CHARS = 64
REQUEST_ID_CHARS = 128

BreakReason = Literal[
    "sequence_gap",
    "prev_hash_mismatch",
    "hash_mismatch",
    "wrong_chain",
    "missing_records",
    "head_mismatch",
    "no_head",
    "past_head",
]
_DOMAIN = b"kervan-audit-record-v1\n"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SITE_SUBJECT = re.compile(r"^site:([1-9][0-9]{0,18})$")


def chain_of(site_id: int | None) -> int:
    """The chain a record of ``site_id`` (None: the platform) belongs to."""
    if site_id is None:
        return PLATFORM_CHAIN
    if site_id < 1:
        raise ValueError("a site id is positive")
    return site_id


def site_of_subject(subject: str) -> int | None:
    """The site a subject ``site:<id>`` names (the convention of every site's record)."""
    found = _SITE_SUBJECT.match(subject)
    return None if found is None else int(found.group(1))


def ts_micros(ts: datetime) -> int:
    """Whole microseconds since the epoch: what both databases store, exactly."""
    if ts.tzinfo is None:
        raise ValueError("an audit timestamp is timezone-aware")
    return (ts - _EPOCH) // timedelta(microseconds=1)


def normalized(value: Any) -> Any:
    """``value`` as it reads back from a JSON column (tuples become lists, keys strings), so
    the hash of a record and of its stored copy agree."""
    if value is None:
        return None
    result: Any = json.loads(json.dumps(value, allow_nan=False))
    return result


@dataclass(frozen=True, slots=True)
class AuditRecord:
    chain: int
    seq: int
    ts_us: int
    site_id: int | None
    actor: str
    action: str
    subject: str
    request_id: str | None
    details: Any
    before: Any
    after: Any
    prev_hash: str
    hash: str = ""

    def content(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "seq": self.seq,
            "ts_us": self.ts_us,
            "site_id": self.site_id,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "request_id": self.request_id,
            "details": self.details,
            "before": self.before,
            "after": self.after,
            "prev_hash": self.prev_hash,
        }


def record_hash(record: AuditRecord) -> str:
    canonical = json.dumps(
        record.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")
    return hashlib.sha256(_DOMAIN + canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain ends: its last ``seq`` and that record's hash."""

    seq: int
    hash: str


GENESIS = ChainHead(0, GENESIS_HASH)


def append(
    head: ChainHead,
    *,
    site_id: int | None,
    ts: datetime,
    actor: str,
    action: str,
    subject: str,
    request_id: str | None = None,
    details: Any = None,
    before: Any = None,
    after: Any = None,
) -> AuditRecord:
    """The record that follows ``head`` in the chain of ``site_id``, hashed."""
    record = AuditRecord(
        chain=chain_of(site_id),
        seq=head.seq + 1,
        ts_us=ts_micros(ts),
        site_id=site_id,
        actor=actor[:ACTOR_CHARS],
        action=action[:ACTION_CHARS],
        subject=subject[:SUBJECT_CHARS],
        request_id=None if request_id is None else request_id[:REQUEST_ID_CHARS],
        details=normalized(details),
        before=normalized(before),
        after=normalized(after),
        prev_hash=head.hash,
    )
    return replace(record, hash=record_hash(record))


@dataclass(frozen=True, slots=True)
class ChainBreak:
    chain: int
    seq: int
    reason: BreakReason
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"chain": self.chain, "seq": self.seq, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ChainReport:
    chain: int
    ok: bool
    checked: int
    head: ChainHead
    first_break: ChainBreak | None

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "ok": self.ok,
            "checked": self.checked,
            "head_seq": self.head.seq,
            "head_hash": self.head.hash,
            "first_break": None if self.first_break is None else self.first_break.to_json(),
        }


class ChainWalker:
    """Checks one chain's records fed in ``seq`` order and keeps the first broken link.

    After a break nothing more is checked: every later record hangs off a link that can no
    longer be trusted.
    """

    def __init__(self, chain: int) -> None:
        self.chain = chain
        self.checked = 0
        self.last = GENESIS
        self.first_break: ChainBreak | None = None

    @property
    def broken(self) -> bool:
        return self.first_break is not None

    def feed(self, record: AuditRecord) -> bool:
        """Check one record; False once the chain is broken (the caller may stop feeding)."""
        if self.broken:
            return False
        self.checked += 1
        expected = self.last.seq + 1
        if record.chain != self.chain or (record.site_id or PLATFORM_CHAIN) != self.chain:
            self._break(record.seq, "wrong_chain", f"the record names chain {record.chain}")
        elif record.seq != expected:
            self._break(expected, "sequence_gap", f"expected seq {expected}, found {record.seq}")
        elif record.prev_hash != self.last.hash:
            self._break(
                record.seq, "prev_hash_mismatch", "prev_hash is not the previous record's hash"
            )
        elif record_hash(record) != record.hash:
            self._break(record.seq, "hash_mismatch", "the record's content does not match its hash")
        else:
            self.last = ChainHead(record.seq, record.hash)
        return not self.broken

    def finish(self, head: ChainHead | None) -> ChainReport:
        """Compare the walked chain's end with the head stored beside the log (None: there is
        no stored head although records exist, or neither exists)."""
        if not self.broken:
            if head is None:
                if self.checked:
                    self._break(self.last.seq, "no_head", "records exist but the chain has no head")
            elif self.last.seq < head.seq:
                self._break(
                    self.last.seq + 1,
                    "missing_records",
                    f"the head records {head.seq} records, the log ends at {self.last.seq}",
                )
            elif self.last != head:
                self._break(
                    self.last.seq, "head_mismatch", "the last record does not match the head"
                )
        return ChainReport(
            chain=self.chain,
            ok=not self.broken,
            checked=self.checked,
            head=head or GENESIS,
            first_break=self.first_break,
        )

    def past_head(self, seq: int, head: ChainHead) -> ChainReport:
        """Report records found beyond the head (appended outside ``record_audit``)."""
        if not self.broken:
            self._break(seq, "past_head", f"a record with seq {seq} lies past the head {head.seq}")
        return ChainReport(self.chain, False, self.checked, head, self.first_break)

    def _break(self, seq: int, reason: BreakReason, detail: str) -> None:
        self.first_break = ChainBreak(self.chain, seq, reason, detail)


def verify_chain(chain: int, records: Iterable[AuditRecord], head: ChainHead | None) -> ChainReport:
    walker = ChainWalker(chain)
    for record in records:
        if not walker.feed(record):
            break
    return walker.finish(head)


def record_from_row(row: Mapping[Any, Any]) -> AuditRecord:
    """A stored record (a row of ``audit_events`` with ``ts`` as an aware datetime)."""
    site = row["site_id"]
    return AuditRecord(
        chain=int(row["chain"]),
        seq=int(row["seq"]),
        ts_us=ts_micros(row["ts"]),
        site_id=None if site is None else int(site),
        actor=str(row["actor"]),
        action=str(row["action"]),
        subject=str(row["subject"]),
        request_id=None if row["request_id"] is None else str(row["request_id"]),
        details=row["details"],
        before=row["state_before"],
        after=row["state_after"],
        prev_hash=str(row["prev_hash"]),
        hash=str(row["hash"]),
    )
