# cython: language_level=3
"""GCRA kernel: a compact open-addressing table of theoretical arrival times (TATs).

Time is an integer number of microseconds supplied by the caller (the injected clock), so the
kernel, the plain-Python reference and the Redis script compute exactly the same answers.

Semantics of one check (interval ``T`` and burst ``B`` of the policy, tolerance ``tau = T * B``):
``tat = max(stored, now)``, ``new_tat = tat + cost * T``; the check is allowed when
``new_tat - tau <= now`` and then ``new_tat`` is stored (only if it lies in the future, an entry
with ``tat <= now`` is indistinguishable from no entry). A refused check changes nothing.

The table never holds more than ``capacity`` entries. Inserting a new key into a full table
evicts, in one pass, every entry whose TAT is at most ``max(now, k-th smallest TAT)`` with
``k = max(1, capacity // 8)``: expired entries first (they carry no state), and only when fewer
than ``k`` have expired, the live entries closest to expiry. Evicting a batch keeps the cost
amortised O(log n) per insertion under a flood of distinct keys.
"""

from cpython.object cimport PyObject, PyObject_Hash
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc, qsort

cdef Py_ssize_t MIN_SLOTS = 16
cdef int64_t MAX_MICROS = max_micros()


cdef int _cmp_int64(const void* a, const void* b) noexcept nogil:
    cdef int64_t x = (<const int64_t*>a)[0]
    cdef int64_t y = (<const int64_t*>b)[0]
    return (x > y) - (x < y)


cdef class GcraTable:
    """Per-key theoretical arrival times with bounded size; see the module docstring."""

    def __cinit__(self, Py_ssize_t capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.nslots = MIN_SLOTS
        self.size = 0
        self.evictions = 0
        self.slots = <Slot*>calloc(self.nslots, sizeof(Slot))
        if self.slots == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.slots != NULL:
            for i in range(self.nslots):
                Py_XDECREF(self.slots[i].key)
            free(self.slots)
            self.slots = NULL

    def __len__(self):
        return self.size

    @property
    def slot_count(self):
        """Allocated slots (for memory accounting: each slot is 24 bytes)."""
        return self.nslots

    cdef Py_ssize_t _find(self, object key, Py_hash_t h):
        """Index of ``key``'s slot, or of the empty slot where it would go."""
        cdef Py_ssize_t mask = self.nslots - 1
        cdef Py_ssize_t i = <Py_ssize_t>(<size_t>h & <size_t>mask)
        cdef PyObject* k
        while True:
            k = self.slots[i].key
            if k == NULL:
                return i
            if self.slots[i].hash == h and (k == <PyObject*>key or (<object>k) == key):
                return i
            i = (i + 1) & mask

    cdef int _resize(self, Py_ssize_t new_nslots) except -1:
        cdef Slot* old = self.slots
        cdef Py_ssize_t old_n = self.nslots
        cdef Slot* fresh = <Slot*>calloc(new_nslots, sizeof(Slot))
        cdef Py_ssize_t i, j, mask
        if fresh == NULL:
            raise MemoryError()
        mask = new_nslots - 1
        for i in range(old_n):
            if old[i].key != NULL:
                j = <Py_ssize_t>(<size_t>old[i].hash & <size_t>mask)
                while fresh[j].key != NULL:
                    j = (j + 1) & mask
                fresh[j] = old[i]
        self.slots = fresh
        self.nslots = new_nslots
        free(old)
        return 0

    cdef int _evict(self, int64_t now) except -1:
        """Drop every entry with ``tat <= max(now, k-th smallest tat)`` and rebuild in place."""
        cdef Py_ssize_t k = self.capacity // 8
        cdef Py_ssize_t i, n = 0, removed = 0
        cdef int64_t threshold = now
        cdef int64_t* tats
        if k < 1:
            k = 1
        tats = <int64_t*>malloc(self.size * sizeof(int64_t))
        if tats == NULL:
            raise MemoryError()
        for i in range(self.nslots):
            if self.slots[i].key != NULL:
                tats[n] = self.slots[i].tat
                n += 1
        qsort(tats, n, sizeof(int64_t), _cmp_int64)
        if tats[k - 1] > threshold:
            threshold = tats[k - 1]
        free(tats)
        for i in range(self.nslots):
            if self.slots[i].key != NULL and self.slots[i].tat <= threshold:
                Py_XDECREF(self.slots[i].key)
                self.slots[i].key = NULL
                removed += 1
        self.size -= removed
        self.evictions += removed
        # Removing entries breaks linear-probing chains; rehashing into a same-size array
        # restores them.
        self._resize(self.nslots)
        return 0

    cdef int _store(self, object key, Py_hash_t h, Py_ssize_t i, int64_t tat, int64_t now) except -1:
        if self.slots[i].key != NULL:
            self.slots[i].tat = tat
            return 0
        if self.size >= self.capacity:
            self._evict(now)
        if (self.size + 1) * 4 > self.nslots * 3:
            self._resize(self.nslots * 2)
        i = self._find(key, h)
        Py_INCREF(key)
        self.slots[i].key = <PyObject*>key
        self.slots[i].hash = h
        self.slots[i].tat = tat
        self.size += 1
        return 0

    cdef int run(
        self, object key, int64_t now, int64_t interval, int64_t burst, int64_t cost, Outcome* out
    ) except -1:
        """One GCRA check of ``key`` (a ``str``) into ``out``; callers have range-checked the
        arguments (``now`` and ``interval`` within 0..MAX_MICROS, ``burst * interval`` too,
        ``cost`` within 0..burst), so no sum below can overflow."""
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef Py_ssize_t i = self._find(key, h)
        cdef int64_t tat = now
        cdef int64_t tau = interval * burst
        cdef int64_t new_tat, allow_at, remaining
        if self.slots[i].key != NULL and self.slots[i].tat > now:
            tat = self.slots[i].tat
        new_tat = tat + cost * interval
        allow_at = new_tat - tau
        if allow_at > now:
            remaining = now + tau - tat
            out.allowed = False
            out.remaining = (remaining if remaining > 0 else 0) // interval
            out.retry_after = allow_at - now
            out.reset_after = tat - now
            return 0
        if new_tat > now:
            self._store(key, h, i, new_tat, now)
        out.allowed = True
        out.remaining = (now + tau - new_tat) // interval
        out.retry_after = 0
        out.reset_after = new_tat - now
        return 0

    def check(self, str key not None, int64_t now, int64_t interval, int64_t burst, int64_t cost):
        """One GCRA check; returns ``(allowed, remaining, retry_after, reset_after)``.

        Durations are in the caller's time unit (microseconds by convention). Arguments are
        range-checked here, in C, where it costs nothing on the hot path; ``native.gcra`` is the
        public entry point.
        """
        cdef Outcome out
        # Range guards in C cost nothing and keep every later sum far from int64 overflow.
        if now < 0 or now > MAX_MICROS:
            raise ValueError(f"now must be within 0..{MAX_MICROS}, got {now}")
        if interval < 1 or interval > MAX_MICROS:
            raise ValueError(f"interval must be within 1..{MAX_MICROS}, got {interval}")
        if burst < 1 or burst > MAX_MICROS // interval:
            raise ValueError(f"burst must be within 1..{MAX_MICROS // interval}, got {burst}")
        if cost < 0 or cost > burst:
            raise ValueError(f"cost must be within 0..{burst}, got {cost}")
        self.run(key, now, interval, burst, cost, &out)
        return (out.allowed, out.remaining, out.retry_after, out.reset_after)

    def get(self, str key not None, int64_t now):
        """The stored TAT of ``key`` if it is still in the future, else ``now``."""
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef Py_ssize_t i = self._find(key, h)
        if self.slots[i].key != NULL and self.slots[i].tat > now:
            return self.slots[i].tat
        return now

    def remove(self, str key not None):
        """Forget ``key``; returns whether it was present (backward-shift deletion)."""
        cdef Py_hash_t h = PyObject_Hash(key)
        cdef Py_ssize_t i = self._find(key, h)
        cdef Py_ssize_t j, home, mask = self.nslots - 1
        cdef bint move
        if self.slots[i].key == NULL:
            return False
        Py_XDECREF(self.slots[i].key)
        self.slots[i].key = NULL
        self.size -= 1
        j = i
        while True:
            j = (j + 1) & mask
            if self.slots[j].key == NULL:
                break
            home = <Py_ssize_t>(<size_t>self.slots[j].hash & <size_t>mask)
            # The entry at j may fill the hole at i unless its home lies cyclically in (i, j].
            if i <= j:
                move = not (i < home <= j)
            else:
                move = not (home > i or home <= j)
            if move:
                self.slots[i] = self.slots[j]
                self.slots[j].key = NULL
                i = j
        return True

    def sweep(self, int64_t now):
        """Remove every expired entry (``tat <= now``); returns how many were removed."""
        cdef Py_ssize_t i, removed = 0
        for i in range(self.nslots):
            if self.slots[i].key != NULL and self.slots[i].tat <= now:
                Py_XDECREF(self.slots[i].key)
                self.slots[i].key = NULL
                removed += 1
        if removed:
            self.size -= removed
            self._resize(self.nslots)
        return removed

    def items(self):
        """A snapshot list of ``(key, tat)`` pairs, in no particular order."""
        cdef Py_ssize_t i
        out = []
        for i in range(self.nslots):
            if self.slots[i].key != NULL:
                out.append((<object>self.slots[i].key, self.slots[i].tat))
        return out

    def clear(self):
        cdef Py_ssize_t i
        for i in range(self.nslots):
            Py_XDECREF(self.slots[i].key)
            self.slots[i].key = NULL
        self.size = 0
