"""Plain-Python GCRA oracle: the same table semantics as ``native/_gcra.pyx``, written plainly.

Times are integer microseconds. See the kernel's docstring for the rules; this file restates them
in the most direct form so the two can be compared on generated sequences.
"""

from __future__ import annotations


class GcraReference:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.tats: dict[str, int] = {}
        self.evictions = 0

    def check(
        self, key: str, now: int, interval: int, burst: int, cost: int
    ) -> tuple[bool, int, int, int]:
        tolerance = interval * burst
        stored = self.tats.get(key)
        tat = stored if stored is not None and stored > now else now
        new_tat = tat + cost * interval
        allow_at = new_tat - tolerance
        if allow_at > now:
            remaining = max(0, now + tolerance - tat) // interval
            return (False, remaining, allow_at - now, tat - now)
        if new_tat > now:
            self._store(key, new_tat, now)
        return (True, (now + tolerance - new_tat) // interval, 0, new_tat - now)

    def _store(self, key: str, tat: int, now: int) -> None:
        if key not in self.tats and len(self.tats) >= self.capacity:
            k = max(1, self.capacity // 8)
            threshold = max(now, sorted(self.tats.values())[k - 1])
            doomed = [name for name, value in self.tats.items() if value <= threshold]
            for name in doomed:
                del self.tats[name]
            self.evictions += len(doomed)
        self.tats[key] = tat

    def get(self, key: str, now: int) -> int:
        stored = self.tats.get(key)
        return stored if stored is not None and stored > now else now

    def remove(self, key: str) -> bool:
        return self.tats.pop(key, None) is not None

    def sweep(self, now: int) -> int:
        doomed = [name for name, value in self.tats.items() if value <= now]
        for name in doomed:
            del self.tats[name]
        return len(doomed)
