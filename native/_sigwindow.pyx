# cython: language_level=3
"""Signaling windows: per-peer reliable delivery bookkeeping (private kernel; call
``native.sigwindow``).

Every relayed signaling message carries a per-peer sequence number (1, 2, 3, ...). The sender
holds each message until it is acknowledged (cumulative acks plus selective acks) and
retransmits it with exponential backoff; the receiver drops duplicates and delivers in order.

Both windows are rings keyed by sequence: ``seq`` lives in slot ``seq % capacity`` and a slot is
meaningful only for sequences within ``[base, base + capacity)`` (sender: ``base = acked + 1``,
receiver: ``base = delivered + 1``). Held sequences never leave that range (the base only moves
forward and everything below it is dropped), so two live sequences never share a slot; a
sequence beyond it raises ``WindowOverflow``. Deadlines, attempts and occupancy are C arrays;
payloads (opaque objects, held by reference) sit in a Python list so the garbage collector sees
them.

Retransmission (``SendWindow.due``): a message pushed at ``t`` is first due at ``t + rto``; each
time ``due(now)`` returns it, ``attempts += 1`` and it is next due at
``now + min(rto << attempts, rto_max)``. ``earliest`` is a lower bound of every held deadline
(exact after a scan), so a timer tick with nothing due returns without scanning.

Times are integer milliseconds from the caller's monotonic clock. Every argument is type- and
range-checked here, in C, naming the argument (``bool`` is refused where an int is expected);
``native.sigwindow`` validates the constructors and is the public entry point.
"""

from cpython.long cimport PyLong_CheckExact
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

from collections.abc import Sequence

cdef extern from *:
    long long PyLong_AsLongLongAndOverflow(object value, int* overflow) except? -1

cdef enum:
    C_ACCEPTED = 0
    C_BUFFERED = 1
    C_DUPLICATE = 2

#: Receive outcomes, the first item of ``ReceiveWindow.receive``'s result.
ACCEPTED = C_ACCEPTED
BUFFERED = C_BUFFERED
DUPLICATE = C_DUPLICATE

#: Bounds of sequences and times; keep ``base + capacity`` and ``now + rto_max`` far from int64
#: overflow.
MAX_SEQ = 1 << 62
MAX_MS = 1 << 62
MAX_CAPACITY = 65536
MAX_RTO_MS = 3_600_000

cdef int64_t C_MAX_SEQ = MAX_SEQ
cdef int64_t C_MAX_MS = MAX_MS
cdef Py_ssize_t C_MAX_CAPACITY = MAX_CAPACITY
cdef int64_t C_MAX_RTO_MS = MAX_RTO_MS
# Above every deadline: the start of a minimum search.
cdef int64_t NEVER = C_MAX_MS + C_MAX_RTO_MS + 1
# ``rto << attempts`` exceeds any allowed rto_max from 22 attempts on; the shift stays far below
# 63 bits.
cdef int64_t SHIFT_CAP = 32


class WindowOverflow(Exception):
    """A sequence beyond the window's capacity: the peer is too far behind/ahead."""


cdef inline int64_t _int_arg(object value, str name, int64_t low, int64_t high) except -1:
    """``value`` as a C integer within ``low..high`` (``low >= 0``), else TypeError/ValueError."""
    cdef int overflow = 0
    cdef long long v
    if not PyLong_CheckExact(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow != 0 or v < low or v > high:
        raise ValueError(f"{name} must be within {low}..{high}, got {value}")
    return v


cdef tuple _seq_tuple(object seqs, str name):
    """``seqs`` (a sequence of ints, not a string or bytes) as a validated tuple.

    A tuple of its own keeps the items alive and unchanged while the window works on them
    (dropping a payload may run arbitrary code).
    """
    cdef tuple items
    cdef Py_ssize_t k
    if type(seqs) is tuple:
        items = <tuple>seqs
    elif type(seqs) is list or (
        isinstance(seqs, Sequence) and not isinstance(seqs, (str, bytes, bytearray))
    ):
        items = tuple(seqs)
    else:
        raise TypeError(f"{name} must be a sequence of ints, got {type(seqs).__name__}")
    for k in range(PyTuple_GET_SIZE(items)):
        _int_arg(<object>PyTuple_GET_ITEM(items, k), name, 1, C_MAX_SEQ)
    return items


cdef class SendWindow:
    """Sent messages held until acknowledged, with retransmit deadlines; see the module doc."""

    cdef int64_t* deadlines
    cdef int64_t* tries
    cdef unsigned char* held
    cdef list payloads
    cdef readonly Py_ssize_t capacity
    cdef readonly int64_t rto_ms
    cdef readonly int64_t rto_max_ms
    cdef readonly int64_t acked
    cdef Py_ssize_t size
    # Highest held sequence (an upper bound once selective acks dropped it); scans stop there.
    cdef int64_t top
    # Lower bound of every held deadline; exact while ``earliest_exact``.
    cdef int64_t earliest
    cdef bint earliest_exact

    def __cinit__(self, Py_ssize_t capacity, int64_t rto_ms, int64_t rto_max_ms):
        if capacity < 1 or capacity > C_MAX_CAPACITY:
            raise ValueError(f"capacity must be within 1..{MAX_CAPACITY}, got {capacity}")
        if rto_ms < 1 or rto_ms > C_MAX_RTO_MS:
            raise ValueError(f"rto_ms must be within 1..{MAX_RTO_MS}, got {rto_ms}")
        if rto_max_ms < rto_ms or rto_max_ms > C_MAX_RTO_MS:
            raise ValueError(
                f"rto_max_ms must be within {rto_ms}..{MAX_RTO_MS}, got {rto_max_ms}"
            )
        self.capacity = capacity
        self.rto_ms = rto_ms
        self.rto_max_ms = rto_max_ms
        self.acked = 0
        self.size = 0
        self.top = 0
        self.earliest = 0
        self.earliest_exact = True
        self.payloads = [None] * capacity
        self.deadlines = <int64_t*>calloc(capacity, sizeof(int64_t))
        self.tries = <int64_t*>calloc(capacity, sizeof(int64_t))
        self.held = <unsigned char*>calloc(capacity, sizeof(unsigned char))
        if self.deadlines == NULL or self.tries == NULL or self.held == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.deadlines)
        free(self.tries)
        free(self.held)
        self.deadlines = NULL
        self.tries = NULL
        self.held = NULL

    def __len__(self):
        return self.size

    cdef inline int64_t _backoff(self, int64_t attempts) noexcept:
        cdef int64_t interval
        if attempts >= SHIFT_CAP:
            return self.rto_max_ms
        interval = self.rto_ms << attempts
        return interval if interval < self.rto_max_ms else self.rto_max_ms

    cdef inline void _drop(self, Py_ssize_t i) noexcept:
        self.held[i] = 0
        self.size -= 1
        # Only the message holding the earliest deadline takes the minimum with it.
        if self.deadlines[i] <= self.earliest:
            self.earliest_exact = False
        self.payloads[i] = None

    cdef void _rescan_earliest(self) noexcept:
        cdef Py_ssize_t i = <Py_ssize_t>((self.acked + 1) % self.capacity)
        cdef Py_ssize_t seen = 0
        cdef int64_t seq, lowest = NEVER
        seq = self.acked + 1
        while seen < self.size and seq <= self.top:
            if self.held[i]:
                seen += 1
                if self.deadlines[i] < lowest:
                    lowest = self.deadlines[i]
            seq += 1
            i += 1
            if i == self.capacity:
                i = 0
        self.earliest = lowest
        self.earliest_exact = True

    def push(self, object seq, object payload, object now_ms):
        """Hold ``seq`` (just sent) until acknowledged; first due at ``now_ms + rto_ms``.

        Returns False (and changes nothing) when ``seq <= acked`` or ``seq`` is already held;
        raises ``WindowOverflow`` when ``seq >= acked + 1 + capacity``.
        """
        cdef int64_t s = _int_arg(seq, "seq", 1, C_MAX_SEQ)
        cdef int64_t now = _int_arg(now_ms, "now_ms", 0, C_MAX_MS)
        cdef int64_t deadline
        cdef Py_ssize_t i
        if s <= self.acked:
            return False
        if s - self.acked > self.capacity:
            raise WindowOverflow(
                f"seq {s} is beyond the send window (acked {self.acked}, "
                f"capacity {self.capacity})"
            )
        i = <Py_ssize_t>(s % self.capacity)
        if self.held[i]:
            return False
        deadline = now + self.rto_ms
        self.held[i] = 1
        self.deadlines[i] = deadline
        self.tries[i] = 0
        self.payloads[i] = payload
        if self.size == 0:
            self.earliest = deadline
            self.earliest_exact = True
            self.top = s
        else:
            if deadline < self.earliest:
                self.earliest = deadline
            if s > self.top:
                self.top = s
        self.size += 1
        return True

    def ack(self, object cumulative, object sacks=()):
        """Drop every held seq ``<= cumulative`` and each held seq listed in ``sacks``.

        A cumulative ack below ``acked`` is stale (ignored); sequences not held are ignored.
        Returns how many messages were dropped; ``acked`` becomes ``max(acked, cumulative)``.
        """
        cdef int64_t cum = _int_arg(cumulative, "cumulative", 0, C_MAX_SEQ)
        cdef tuple selective = _seq_tuple(sacks, "sacks")
        cdef int64_t seq, last, s
        cdef Py_ssize_t i, k, dropped = 0
        cdef int overflow = 0
        if cum > self.acked:
            if self.size:
                last = cum if cum < self.top else self.top
                seq = self.acked + 1
                i = <Py_ssize_t>(seq % self.capacity)
                while seq <= last and self.size:
                    if self.held[i]:
                        self._drop(i)
                        dropped += 1
                    seq += 1
                    i += 1
                    if i == self.capacity:
                        i = 0
            self.acked = cum
        for k in range(PyTuple_GET_SIZE(selective)):
            if not self.size:
                break
            s = PyLong_AsLongLongAndOverflow(<object>PyTuple_GET_ITEM(selective, k), &overflow)
            if s > self.acked and s <= self.top:
                i = <Py_ssize_t>(s % self.capacity)
                if self.held[i]:
                    self._drop(i)
                    dropped += 1
        return dropped

    def due(self, object now_ms, object limit=64):
        """The held messages due at ``now_ms`` (deadline ``<= now_ms``), in seq order, at most
        ``limit``, as ``(seq, payload)`` pairs. Each one returned counts as retransmitted:
        ``attempts += 1`` and it is next due at ``now_ms + min(rto_ms << attempts, rto_max_ms)``.
        """
        cdef int64_t now = _int_arg(now_ms, "now_ms", 0, C_MAX_MS)
        cdef Py_ssize_t lim = <Py_ssize_t>_int_arg(limit, "limit", 0, C_MAX_SEQ)
        cdef list out = []
        cdef Py_ssize_t i, seen = 0, taken = 0
        cdef int64_t seq, deadline, attempts, lowest = NEVER
        if self.size == 0 or lim == 0 or now < self.earliest:
            return out
        seq = self.acked + 1
        i = <Py_ssize_t>(seq % self.capacity)
        while seen < self.size and seq <= self.top:
            if self.held[i]:
                seen += 1
                deadline = self.deadlines[i]
                if deadline <= now and taken < lim:
                    attempts = self.tries[i] + 1
                    self.tries[i] = attempts
                    deadline = now + self._backoff(attempts)
                    self.deadlines[i] = deadline
                    out.append((seq, self.payloads[i]))
                    taken += 1
                if deadline < lowest:
                    lowest = deadline
            seq += 1
            i += 1
            if i == self.capacity:
                i = 0
        self.earliest = lowest
        self.earliest_exact = True
        return out

    def next_deadline(self):
        """The earliest deadline of any held message; None when nothing is held."""
        if self.size == 0:
            return None
        if not self.earliest_exact:
            self._rescan_earliest()
        return self.earliest

    def pending(self):
        """Every held message as ``(seq, payload)``, in seq order (for a resume)."""
        cdef list out = []
        cdef Py_ssize_t i = <Py_ssize_t>((self.acked + 1) % self.capacity)
        cdef int64_t seq = self.acked + 1
        while len(out) < self.size and seq <= self.top:
            if self.held[i]:
                out.append((seq, self.payloads[i]))
            seq += 1
            i += 1
            if i == self.capacity:
                i = 0
        return out

    def rearm(self, object now_ms):
        """Every held message was just sent again (a resume on a new connection): attempts
        start over and each is next due at ``now_ms + rto_ms``."""
        cdef int64_t now = _int_arg(now_ms, "now_ms", 0, C_MAX_MS)
        cdef Py_ssize_t i
        for i in range(self.capacity):
            if self.held[i]:
                self.tries[i] = 0
                self.deadlines[i] = now + self.rto_ms
        self.earliest = now + self.rto_ms
        self.earliest_exact = True

    def attempts(self, object seq):
        """How many times held ``seq`` was returned by ``due`` since it was pushed or rearmed;
        KeyError when it is not held."""
        cdef int64_t s = _int_arg(seq, "seq", 1, C_MAX_SEQ)
        cdef Py_ssize_t i = <Py_ssize_t>(s % self.capacity)
        if s <= self.acked or s - self.acked > self.capacity or not self.held[i]:
            raise KeyError(s)
        return self.tries[i]


cdef class ReceiveWindow:
    """Out-of-order messages buffered until their predecessors arrive; see the module doc."""

    cdef unsigned char* held
    cdef list payloads
    cdef readonly Py_ssize_t capacity
    cdef readonly int64_t delivered
    cdef Py_ssize_t size
    # Highest buffered sequence (valid while ``size > 0``); scans stop there.
    cdef int64_t top

    def __cinit__(self, Py_ssize_t capacity, int64_t delivered=0):
        if capacity < 1 or capacity > C_MAX_CAPACITY:
            raise ValueError(f"capacity must be within 1..{MAX_CAPACITY}, got {capacity}")
        if delivered < 0 or delivered > C_MAX_SEQ:
            raise ValueError(f"delivered must be within 0..{C_MAX_SEQ}, got {delivered}")
        self.capacity = capacity
        self.delivered = delivered
        self.size = 0
        self.top = delivered
        self.payloads = [None] * capacity
        self.held = <unsigned char*>calloc(capacity, sizeof(unsigned char))
        if self.held == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.held)
        self.held = NULL

    def __len__(self):
        return self.size

    def receive(self, object seq, object payload):
        """Take ``seq``; returns ``(status, deliverable)``.

        ACCEPTED: ``seq`` was the next one; it and every buffered consecutive successor are
        returned in order and ``delivered`` advances. BUFFERED: held for later, nothing
        returned. DUPLICATE: ``seq <= delivered`` or already buffered; nothing changes. Raises
        ``WindowOverflow`` when ``seq > delivered + capacity``.
        """
        cdef int64_t s = _int_arg(seq, "seq", 1, C_MAX_SEQ)
        cdef list out
        cdef Py_ssize_t i
        if s <= self.delivered:
            return (C_DUPLICATE, [])
        if s - self.delivered > self.capacity:
            raise WindowOverflow(
                f"seq {s} is beyond the receive window (delivered {self.delivered}, "
                f"capacity {self.capacity})"
            )
        if s == self.delivered + 1:
            out = [(seq, payload)]
            self.delivered = s
            i = <Py_ssize_t>(s % self.capacity)
            while self.size:
                i += 1
                if i == self.capacity:
                    i = 0
                if not self.held[i]:
                    break
                self.delivered += 1
                out.append((self.delivered, self.payloads[i]))
                self.held[i] = 0
                self.size -= 1
                self.payloads[i] = None
            return (C_ACCEPTED, out)
        i = <Py_ssize_t>(s % self.capacity)
        if self.held[i]:
            return (C_DUPLICATE, [])
        self.held[i] = 1
        self.payloads[i] = payload
        if self.size == 0 or s > self.top:
            self.top = s
        self.size += 1
        return (C_BUFFERED, [])

    def sacks(self, object limit=32):
        """Buffered sequences, ascending, at most ``limit`` (the selective acks to send)."""
        cdef Py_ssize_t lim = <Py_ssize_t>_int_arg(limit, "limit", 0, C_MAX_SEQ)
        cdef list out = []
        cdef Py_ssize_t seen = 0, i
        cdef int64_t seq
        if lim > self.size:
            lim = self.size
        seq = self.delivered + 2
        i = <Py_ssize_t>(seq % self.capacity)
        while seen < lim and seq <= self.top:
            if self.held[i]:
                out.append(seq)
                seen += 1
            seq += 1
            i += 1
            if i == self.capacity:
                i = 0
        return out

    def reset(self, object delivered):
        """Start over after ``delivered`` (a resume told where the peer's stream stands); the
        buffer is emptied."""
        cdef int64_t d = _int_arg(delivered, "delivered", 0, C_MAX_SEQ)
        cdef list old = self.payloads
        # The old payloads are released (on return) only once the window is consistent again.
        self.payloads = [None] * self.capacity
        memset(self.held, 0, self.capacity)
        self.size = 0
        self.delivered = d
        self.top = d
