"""The append-only, hash-chained consent event log and its verification.

Each event's hash covers its content and the previous event's hash of the same subject, so an
edited, removed or reordered event breaks the chain. The hash is plain SHA-256 over a canonical
JSON encoding, so an auditor can recompute it from an export without any kervan secret. The
consent state keeps the subject's last ``seq`` and hash, which exposes deleted newest events.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from core.consent.model import GENESIS_HASH

Action = Literal["grant", "refuse", "withdraw"]
BreakReason = Literal[
    "hash_mismatch", "prev_hash_mismatch", "sequence_gap", "head_mismatch", "missing_events"
]
_DOMAIN = b"kervan-consent-event-v1\n"


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    subject: str
    seq: int
    ts_ms: int
    purpose: str
    value: str
    action: str
    # The purpose's status just before this event: "expired" marks an expiry-driven re-prompt
    # answer, "unknown" a first answer.
    prior_status: str
    source: str
    banner_version: str | None
    region: str | None
    expires_at_ms: int
    prev_hash: str
    hash: str = ""

    def content(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "purpose": self.purpose,
            "value": self.value,
            "action": self.action,
            "prior_status": self.prior_status,
            "source": self.source,
            "banner_version": self.banner_version,
            "region": self.region,
            "expires_at_ms": self.expires_at_ms,
            "prev_hash": self.prev_hash,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.content(), "hash": self.hash}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConsentEvent:
        return cls(
            subject=str(data["subject"]),
            seq=int(data["seq"]),
            ts_ms=int(data["ts_ms"]),
            purpose=str(data["purpose"]),
            value=str(data["value"]),
            action=str(data["action"]),
            prior_status=str(data["prior_status"]),
            source=str(data["source"]),
            banner_version=_opt_str(data.get("banner_version")),
            region=_opt_str(data.get("region")),
            expires_at_ms=int(data["expires_at_ms"]),
            prev_hash=str(data["prev_hash"]),
            hash=str(data.get("hash", "")),
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def event_hash(event: ConsentEvent) -> str:
    canonical = json.dumps(
        event.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")
    return hashlib.sha256(_DOMAIN + canonical).hexdigest()


def seal(event: ConsentEvent) -> ConsentEvent:
    """Return the event with its hash filled in."""
    return replace(event, hash=event_hash(event))


@dataclass(frozen=True, slots=True)
class ChainBreak:
    subject: str
    seq: int
    reason: BreakReason
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "seq": self.seq,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a subject's chain ends according to the consent state."""

    seq: int
    hash: str


@dataclass
class ChainVerifier:
    """Verifies events fed in per-subject ``seq`` order (subjects may interleave).

    Each subject's chain must start at ``seq`` 1 on the genesis hash. After an edited event the
    chain continues from its *stored* hash, so the edit is reported once, at the edited event.
    """

    checked: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    _last: dict[str, tuple[int, str]] = field(default_factory=dict)

    def feed(self, event: ConsentEvent) -> ChainBreak | None:
        """Check one event; return the first problem found with it, if any."""
        self.checked += 1
        last_seq, last_hash = self._last.get(event.subject, (0, GENESIS_HASH))
        self._last[event.subject] = (event.seq, event.hash)
        problem: ChainBreak | None = None
        if event.seq != last_seq + 1:
            problem = ChainBreak(
                event.subject,
                event.seq,
                "sequence_gap",
                f"expected seq {last_seq + 1}, found {event.seq}",
            )
        elif event.prev_hash != last_hash:
            problem = ChainBreak(
                event.subject,
                event.seq,
                "prev_hash_mismatch",
                "prev_hash does not match the previous event's hash",
            )
        elif event_hash(event) != event.hash:
            problem = ChainBreak(
                event.subject, event.seq, "hash_mismatch", "event content does not match its hash"
            )
        if problem is not None:
            self.breaks.append(problem)
        return problem

    def finish(self, heads: Mapping[str, ChainHead]) -> list[ChainBreak]:
        """Compare each subject's last event with the head its consent state recorded."""
        for subject, head in sorted(heads.items()):
            last_seq, last_hash = self._last.get(subject, (0, GENESIS_HASH))
            if last_seq < head.seq:
                self.breaks.append(
                    ChainBreak(
                        subject,
                        last_seq + 1,
                        "missing_events",
                        f"state records {head.seq} events, log ends at {last_seq}",
                    )
                )
            elif (last_seq, last_hash) != (head.seq, head.hash):
                self.breaks.append(
                    ChainBreak(
                        subject,
                        last_seq,
                        "head_mismatch",
                        "the last event does not match the head recorded in the consent state",
                    )
                )
        return self.breaks

    @property
    def ok(self) -> bool:
        return not self.breaks


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    breaks: tuple[ChainBreak, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "breaks": [item.to_json() for item in self.breaks],
        }


def verify_chain(
    events: Iterable[ConsentEvent], heads: Mapping[str, ChainHead] | None = None
) -> ChainReport:
    verifier = ChainVerifier()
    for event in events:
        verifier.feed(event)
    verifier.finish(heads or {})
    return ChainReport(ok=verifier.ok, checked=verifier.checked, breaks=tuple(verifier.breaks))
