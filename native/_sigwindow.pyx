# cython: language_level=3, binding=False
# (binding=False: the methods are plain builtin methods, so a call skips Cython's function-object
# layer, a sizeable share of a one-message call.)
"""Signaling windows: per-peer reliable delivery bookkeeping (private kernel; call
``native.sigwindow``).

Every relayed signaling message carries a per-peer sequence number (1, 2, 3, ...). The sender
holds each message until it is acknowledged (cumulative acks plus selective acks) and
retransmits it with exponential backoff; the receiver drops duplicates and delivers in order.

Both windows are rings keyed by sequence: the window's base (sender: ``acked + 1``, receiver:
``delivered + 1``) lives in slot ``base_slot`` and ``base + k`` in the slot ``k`` further on
(wrapping), so a slot is found by an addition, not a division. A slot is meaningful only for
sequences within ``[base, base + capacity)``. Held sequences never leave that range (the base
only moves forward and everything below it is dropped), so two live sequences never share a
slot; a sequence beyond it raises ``WindowOverflow``. Deadlines, attempts and occupancy are C
arrays; payloads (opaque objects, held by reference) sit in a Python list so the garbage
collector sees them. A free slot's payload is None and its deadline ``NEVER``, so a deadline
scan needs no occupancy test and dropping a free slot's payload runs no code.

Retransmission (``SendWindow.due``): a message pushed at ``t`` is first due at ``t + rto``; each
time ``due(now)`` returns it, ``attempts += 1`` and it is next due at
``now + min(rto << attempts, rto_max)``. ``earliest`` is a lower bound of every held deadline
(exact after a scan), so a timer tick with nothing due returns without scanning.

Batches (``push_many``, ``receive_many``) take a sequence of ``(seq, payload)`` pairs and do
what the single call would do for each pair in turn, in one call: a relay handling a burst of
frames pays the interpreter's call price once. Every pair is checked before anything changes.

Times are integer milliseconds from the caller's monotonic clock. Every argument is type- and
range-checked here, in C, naming the argument (``bool`` is refused where an int is expected);
``native.sigwindow`` validates the constructors and is the public entry point.
"""

from cpython.long cimport PyLong_CheckExact
from cpython.ref cimport PyObject
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS
from cpython.tuple cimport PyTuple_Check, PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

from collections.abc import Iterable, Sequence

cdef extern from *:
    long long PyLong_AsLongLongAndOverflow(object value, int* overflow) except? -1

# The batches' inner loops, in C on borrowed pointers: no reference count changes but the ones
# that ownership needs.
cdef extern from *:
    """
    /* A checked ``(seq, payload)`` pair: the seq as a C integer, the payload borrowed from
       the batch (which the caller holds). */
    typedef struct {
        int64_t seq;
        PyObject* payload;
    } sigwindow_pair;

    /* Pairs ``items[k..n)`` into ``pairs``, for as long as each is an exact tuple of two whose
       seq is an exact int in 1..2**30-1 (every sequence of a real stream); returns where that
       stopped (``n`` when all were). Anything else is left to the general check. */
    static inline Py_ssize_t sigwindow_small_pairs(PyObject* const* items, Py_ssize_t k,
                                                   Py_ssize_t n, sigwindow_pair* pairs) {
        for (; k < n; k++) {
            PyObject* pair = items[k];
            PyObject* seq;
            if (Py_TYPE(pair) != &PyTuple_Type || PyTuple_GET_SIZE(pair) != 2) return k;
            seq = PyTuple_GET_ITEM(pair, 0);
            if (Py_TYPE(seq) != &PyLong_Type) return k;
    #if PY_VERSION_HEX >= 0x030C0000
            if (!PyUnstable_Long_IsCompact((PyLongObject*)seq)) return k;
            pairs[k].seq = (int64_t)PyUnstable_Long_CompactValue((PyLongObject*)seq);
            if (pairs[k].seq < 1) return k;
    #elif !defined(PYPY_VERSION) && !defined(Py_LIMITED_API)
            /* One digit, positive: 1 <= seq < 2**PyLong_SHIFT. */
            if (Py_SIZE(seq) != 1) return k;
            pairs[k].seq = (int64_t)((PyLongObject*)seq)->ob_digit[0];
    #else
            return k;
    #endif
            pairs[k].payload = PyTuple_GET_ITEM(pair, 1);
        }
        return n;
    }

    /* An empty list with room for ``room`` items: appends up to that many do not reallocate. */
    static inline PyObject* sigwindow_list_with_room(Py_ssize_t room) {
        PyObject* list = PyList_New(room);
        if (list != NULL) Py_SET_SIZE(list, 0);
        return list;
    }

    /* Append to a list without a call while it has room (as Cython's own list append does). */
    static inline int sigwindow_append(PyObject* list, PyObject* item) {
        Py_ssize_t len = PyList_GET_SIZE(list);
        if (len < ((PyListObject*)list)->allocated) {
            Py_INCREF(item);
            PyList_SET_ITEM(list, len, item);
            Py_SET_SIZE(list, len + 1);
            return 0;
        }
        return PyList_Append(list, item);
    }

    /* The item array of a list the window never resizes (its ring of payloads). */
    static inline PyObject** sigwindow_ring(PyObject* list) {
        return ((PyListObject*)list)->ob_item;
    }

    /* Put ``item`` into ring slot ``i``, which holds None (dropping it releases nothing). */
    static inline void sigwindow_put(PyObject** ring, Py_ssize_t i, PyObject* item) {
        PyObject* old = ring[i];
        Py_INCREF(item);
        ring[i] = item;
        Py_DECREF(old);
    }

    /* Move ring slot ``i``'s payload to the end of ``out``: its reference moves along (no
       count changes, nothing is released) and the slot takes None. */
    static inline int sigwindow_move(PyObject** ring, Py_ssize_t i, PyObject* out) {
        PyObject* item = ring[i];
        Py_ssize_t len = PyList_GET_SIZE(out);
        if (len < ((PyListObject*)out)->allocated) {
            PyList_SET_ITEM(out, len, item);
            Py_SET_SIZE(out, len + 1);
        } else {
            if (PyList_Append(out, item) < 0) return -1;
            Py_DECREF(item);  /* ``out`` holds it now */
        }
        Py_INCREF(Py_None);
        ring[i] = Py_None;
        return 0;
    }

    /* A receive window's state while ``sigwindow_receive_run`` works on it. */
    typedef struct {
        PyObject** ring;           /* the payloads list's items: None where nothing is held */
        unsigned char* held;
        Py_ssize_t capacity;
        Py_ssize_t base;           /* the slot of delivered + 1 */
        Py_ssize_t size;
        int64_t delivered;
    } sigwindow_rx;

    /* ``receive`` for pairs ``k`` = 0, 1, ... of a checked batch, the delivered payloads
       appended to ``out``. Returns the index of the first pair beyond the window (``n`` when
       there is none; the pairs from there on are not looked at), or -1 when ``out`` cannot
       grow (MemoryError set). ``w`` is consistent and up to date in every case. No Python code
       runs: a delivered payload's reference moves from the ring to ``out``, a buffered one
       replaces None. */
    static Py_ssize_t sigwindow_receive_run(sigwindow_rx* w, const sigwindow_pair* pairs,
                                            Py_ssize_t n, PyObject* out) {
        PyObject** const ring = w->ring;
        unsigned char* const held = w->held;
        const Py_ssize_t capacity = w->capacity;
        Py_ssize_t base = w->base, size = w->size, k, i;
        int64_t delivered = w->delivered, offset;
        PyObject* payload;
        for (k = 0; k < n; k++) {
            offset = pairs[k].seq - delivered;
            if (offset <= 0) continue;                   /* a duplicate */
            if (offset > capacity) break;                /* beyond the window */
            payload = pairs[k].payload;
            if (offset > 1) {                            /* out of order: buffered */
                i = base + (Py_ssize_t)(offset - 1);
                if (i >= capacity) i -= capacity;
                if (!held[i]) {
                    sigwindow_put(ring, i, payload);
                    held[i] = 1;
                    size++;
                }
                continue;
            }
            if (sigwindow_append(out, payload) < 0) { k = -1; break; }
            delivered++;
            if (++base == capacity) base = 0;
            while (size && held[base]) {                 /* the buffered run it completes */
                if (sigwindow_move(ring, base, out) < 0) { k = -1; break; }
                held[base] = 0;
                size--;
                delivered++;
                if (++base == capacity) base = 0;
            }
            if (k < 0) break;
        }
        w->base = base;
        w->size = size;
        w->delivered = delivered;
        return k;
    }
    """
    ctypedef struct sigwindow_pair:
        int64_t seq
        PyObject* payload
    Py_ssize_t sigwindow_small_pairs(PyObject** items, Py_ssize_t k, Py_ssize_t n,
                                     sigwindow_pair* pairs) noexcept
    PyObject** sigwindow_ring(PyObject* list) noexcept
    list sigwindow_list_with_room(Py_ssize_t room)
    ctypedef struct sigwindow_rx:
        PyObject** ring
        unsigned char* held
        Py_ssize_t capacity
        Py_ssize_t base
        Py_ssize_t size
        int64_t delivered
    Py_ssize_t sigwindow_receive_run(sigwindow_rx* w, sigwindow_pair* pairs, Py_ssize_t n,
                                     PyObject* out) noexcept

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
# Above every deadline: a free slot's deadline and the start of a minimum search.
cdef int64_t NEVER = C_MAX_MS + C_MAX_RTO_MS + 1
# ``rto << attempts`` exceeds any allowed rto_max from 22 attempts on; the shift stays far below
# 63 bits.
cdef int64_t SHIFT_CAP = 32

# ``receive``'s answers that deliver nothing: immutable, so one object serves every call.
cdef tuple DUPLICATE_NOTHING = (C_DUPLICATE, ())
cdef tuple BUFFERED_NOTHING = (C_BUFFERED, ())
cdef char* FRAMES_TYPE = b"frames must be a sequence of (seq, payload) pairs"


class WindowOverflow(Exception):
    """A sequence beyond the window's capacity: the peer is too far behind/ahead.

    From ``ReceiveWindow.receive_many``, ``delivered`` holds the payloads that the pairs before
    the one beyond the window delivered (in order; they are delivered: ``delivered`` of the
    window counts them). Empty otherwise.
    """

    delivered = ()


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


cdef enum:
    # Batches up to this many pairs keep their checked pairs on the C stack.
    FRAMES_ON_STACK = 256


cdef object _frames(object frames):
    """``frames`` as a list or tuple (``PySequence_Fast``); TypeError for anything that is no
    sequence or iterable of pairs (strings and bytes are refused outright)."""
    if type(frames) is list or type(frames) is tuple:
        return frames
    if isinstance(frames, (str, bytes, bytearray)) or not isinstance(frames, Iterable):
        raise TypeError(
            f"frames must be a sequence of (seq, payload) pairs, got {type(frames).__name__}"
        )
    return PySequence_Fast(frames, FRAMES_TYPE)


cdef int64_t _pair_seq(object pair, Py_ssize_t k) except -1:
    """The seq of pair ``k`` (any tuple of two, its seq an int within 1..MAX_SEQ); else the
    TypeError/ValueError naming the pair. Allocates nothing unless it raises."""
    cdef object seq
    cdef int overflow = 0
    cdef long long v
    if not PyTuple_Check(pair):
        raise TypeError(
            f"frames[{k}] must be a (seq, payload) tuple, got {type(pair).__name__}"
        )
    if PyTuple_GET_SIZE(pair) != 2:
        raise TypeError(
            f"frames[{k}] must be a (seq, payload) tuple, got {PyTuple_GET_SIZE(pair)} items"
        )
    seq = <object>PyTuple_GET_ITEM(pair, 0)
    if PyLong_CheckExact(seq):
        v = PyLong_AsLongLongAndOverflow(seq, &overflow)
        if overflow == 0 and v >= 1 and v <= C_MAX_SEQ:
            return v
    return _int_arg(seq, f"frames[{k}] seq", 1, C_MAX_SEQ)


cdef int _frame_pairs(object fast, sigwindow_pair* pairs) except -1:
    """Check that every item of ``fast`` (from ``_frames``) is a ``(seq, payload)`` tuple with
    a valid ``seq`` and write them to ``pairs``; TypeError/ValueError naming the pair.

    The batches use the pairs' payloads after this check, borrowed. Nothing between the check
    and that use runs Python code (no payload is released, nothing is allocated but list room,
    so no garbage collection runs either), so the pairs cannot change in between.
    """
    cdef PyObject** items = PySequence_Fast_ITEMS(fast)
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(fast)
    cdef Py_ssize_t k = sigwindow_small_pairs(items, 0, n, pairs)
    while k < n:
        pairs[k].seq = _pair_seq(<object>items[k], k)
        pairs[k].payload = PyTuple_GET_ITEM(<object>items[k], 1)
        k = sigwindow_small_pairs(items, k + 1, n, pairs)
    return 0


cdef sigwindow_pair* _pairs_buffer(Py_ssize_t n, sigwindow_pair* on_stack) except NULL:
    """Room for ``n`` pairs: ``on_stack`` when they fit, else allocated (free it)."""
    cdef sigwindow_pair* pairs
    if n <= FRAMES_ON_STACK:
        return on_stack
    pairs = <sigwindow_pair*>malloc(n * sizeof(sigwindow_pair))
    if pairs == NULL:
        raise MemoryError()
    return pairs


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
    # The slot of ``acked + 1``.
    cdef Py_ssize_t base_slot
    # Highest held sequence (an upper bound once selective acks dropped it); scans stop there.
    cdef int64_t top
    # Lower bound of every held deadline; exact while ``earliest_exact``.
    cdef int64_t earliest
    cdef bint earliest_exact

    def __cinit__(self, Py_ssize_t capacity, int64_t rto_ms, int64_t rto_max_ms):
        cdef Py_ssize_t i
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
        self.base_slot = 1 % capacity
        self.top = 0
        self.earliest = 0
        self.earliest_exact = True
        self.payloads = [None] * capacity
        self.deadlines = <int64_t*>malloc(capacity * sizeof(int64_t))
        self.tries = <int64_t*>calloc(capacity, sizeof(int64_t))
        self.held = <unsigned char*>calloc(capacity, sizeof(unsigned char))
        if self.deadlines == NULL or self.tries == NULL or self.held == NULL:
            raise MemoryError()
        for i in range(capacity):
            self.deadlines[i] = NEVER

    def __dealloc__(self):
        free(self.deadlines)
        free(self.tries)
        free(self.held)
        self.deadlines = NULL
        self.tries = NULL
        self.held = NULL

    def __len__(self):
        return self.size

    cdef inline Py_ssize_t _slot(self, int64_t seq) noexcept:
        """The slot of ``seq``, ``acked < seq <= acked + capacity``."""
        cdef Py_ssize_t i = self.base_slot + <Py_ssize_t>(seq - self.acked - 1)
        return i - self.capacity if i >= self.capacity else i

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
        self.deadlines[i] = NEVER
        self.payloads[i] = None

    cdef inline void _hold(self, Py_ssize_t i, int64_t seq, object payload,
                           int64_t deadline) noexcept:
        self.held[i] = 1
        self.deadlines[i] = deadline
        self.tries[i] = 0
        self.payloads[i] = payload
        if self.size == 0:
            self.earliest = deadline
            self.earliest_exact = True
            self.top = seq
        else:
            if deadline < self.earliest:
                self.earliest = deadline
            if seq > self.top:
                self.top = seq
        self.size += 1

    cdef inline Py_ssize_t _span(self) noexcept:
        """How many slots from the base up to ``top`` a scan visits."""
        if self.size == 0 or self.top <= self.acked:
            return 0
        return <Py_ssize_t>(self.top - self.acked)

    cdef void _rescan_earliest(self) noexcept:
        cdef Py_ssize_t i, end, start = self.base_slot, remaining = self._span()
        cdef int64_t lowest = NEVER, d
        while remaining > 0:
            end = start + remaining
            if end > self.capacity:
                end = self.capacity
            for i in range(start, end):
                d = self.deadlines[i]
                if d < lowest:
                    lowest = d
            remaining -= end - start
            start = 0
        self.earliest = lowest
        self.earliest_exact = True

    cdef object _overflow(self, int64_t s):
        return WindowOverflow(
            f"seq {s} is beyond the send window (acked {self.acked}, "
            f"capacity {self.capacity})"
        )

    def push(self, object seq, object payload, object now_ms):
        """Hold ``seq`` (just sent) until acknowledged; first due at ``now_ms + rto_ms``.

        Returns False (and changes nothing) when ``seq <= acked`` or ``seq`` is already held;
        raises ``WindowOverflow`` when ``seq >= acked + 1 + capacity``.
        """
        cdef int64_t s = _int_arg(seq, "seq", 1, C_MAX_SEQ)
        cdef int64_t now = _int_arg(now_ms, "now_ms", 0, C_MAX_MS)
        cdef Py_ssize_t i
        if s <= self.acked:
            return False
        if s - self.acked > self.capacity:
            raise self._overflow(s)
        i = self._slot(s)
        if self.held[i]:
            return False
        self._hold(i, s, payload, now + self.rto_ms)
        return True

    def push_many(self, object frames, object now_ms):
        """``push(seq, payload, now_ms)`` for each ``(seq, payload)`` of ``frames`` in turn;
        returns how many were newly held.

        A pair beyond the window raises ``WindowOverflow``: the pairs before it stay held, the
        rest are not looked at. A malformed pair raises before anything changes.
        """
        cdef int64_t now = _int_arg(now_ms, "now_ms", 0, C_MAX_MS)
        cdef object fast = _frames(frames)
        cdef Py_ssize_t k, i, n = PySequence_Fast_GET_SIZE(fast), pushed = 0
        cdef int64_t s, deadline = now + self.rto_ms
        cdef sigwindow_pair on_stack[FRAMES_ON_STACK]
        cdef sigwindow_pair* pairs = _pairs_buffer(n, on_stack)
        try:
            _frame_pairs(fast, pairs)
            for k in range(n):
                s = pairs[k].seq
                if s <= self.acked:
                    continue
                if s - self.acked > self.capacity:
                    raise self._overflow(s)
                i = self._slot(s)
                if self.held[i]:
                    continue
                self._hold(i, s, <object>pairs[k].payload, deadline)
                pushed += 1
        finally:
            if pairs != on_stack:
                free(pairs)
        return pushed

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
                i = self.base_slot
                while seq <= last and self.size:
                    if self.held[i]:
                        self._drop(i)
                        dropped += 1
                    seq += 1
                    i += 1
                    if i == self.capacity:
                        i = 0
            self.acked = cum
            self.base_slot = <Py_ssize_t>((cum + 1) % self.capacity)
        for k in range(PyTuple_GET_SIZE(selective)):
            if not self.size:
                break
            s = PyLong_AsLongLongAndOverflow(<object>PyTuple_GET_ITEM(selective, k), &overflow)
            if s > self.acked and s <= self.top:
                i = self._slot(s)
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
        cdef Py_ssize_t i, end, start, remaining, taken = 0
        cdef int64_t first, d, attempts, lowest = NEVER
        if self.size == 0 or lim == 0 or now < self.earliest:
            return out
        # Free slots hold NEVER: the scan reads deadlines alone, one run up to the ring's end
        # and one from its start.
        start = self.base_slot
        remaining = self._span()
        first = self.acked + 1  # the seq of slot ``start``
        while remaining > 0:
            end = start + remaining
            if end > self.capacity:
                end = self.capacity
            for i in range(start, end):
                d = self.deadlines[i]
                if d <= now and taken < lim:
                    attempts = self.tries[i] + 1
                    self.tries[i] = attempts
                    d = now + self._backoff(attempts)
                    self.deadlines[i] = d
                    out.append((first + (i - start), self.payloads[i]))
                    taken += 1
                if d < lowest:
                    lowest = d
            remaining -= end - start
            first += end - start
            start = 0
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
        cdef Py_ssize_t i = self.base_slot
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
        if s <= self.acked or s - self.acked > self.capacity or not self.held[self._slot(s)]:
            raise KeyError(s)
        return self.tries[self._slot(s)]


cdef class ReceiveWindow:
    """Out-of-order messages buffered until their predecessors arrive; see the module doc."""

    cdef unsigned char* held
    cdef list payloads
    cdef readonly Py_ssize_t capacity
    cdef readonly int64_t delivered
    cdef Py_ssize_t size
    # The slot of ``delivered + 1``.
    cdef Py_ssize_t base_slot

    def __cinit__(self, Py_ssize_t capacity, int64_t delivered=0):
        if capacity < 1 or capacity > C_MAX_CAPACITY:
            raise ValueError(f"capacity must be within 1..{MAX_CAPACITY}, got {capacity}")
        if delivered < 0 or delivered > C_MAX_SEQ:
            raise ValueError(f"delivered must be within 0..{C_MAX_SEQ}, got {delivered}")
        self.capacity = capacity
        self.delivered = delivered
        self.base_slot = <Py_ssize_t>((delivered + 1) % capacity)
        self.size = 0
        self.payloads = [None] * capacity
        self.held = <unsigned char*>calloc(capacity, sizeof(unsigned char))
        if self.held == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.held)
        self.held = NULL

    def __len__(self):
        return self.size

    cdef inline Py_ssize_t _slot(self, int64_t seq) noexcept:
        """The slot of ``seq``, ``delivered < seq <= delivered + capacity``."""
        cdef Py_ssize_t i = self.base_slot + <Py_ssize_t>(seq - self.delivered - 1)
        return i - self.capacity if i >= self.capacity else i

    cdef inline void _advance(self) noexcept:
        """``delivered += 1``: the base moves one slot on."""
        self.delivered += 1
        self.base_slot += 1
        if self.base_slot == self.capacity:
            self.base_slot = 0

    cdef inline Py_ssize_t _run_after_base(self) noexcept:
        """How many buffered sequences follow ``delivered + 1`` without a gap."""
        cdef Py_ssize_t run = 0, i = self.base_slot
        while run < self.size:
            i += 1
            if i == self.capacity:
                i = 0
            if not self.held[i]:
                break
            run += 1
        return run

    cdef inline bint _take_next(self, list out) except -1:
        """Move the buffered message at the base (if any) to ``out`` as a ``(seq, payload)``
        pair; whether there was one."""
        cdef Py_ssize_t i = self.base_slot
        cdef object payload
        if not self.size or not self.held[i]:
            return False
        payload = self.payloads[i]
        self.payloads[i] = None  # the reference moves to ``payload``: nothing is released
        self.held[i] = 0
        self.size -= 1
        self._advance()
        out.append((self.delivered, payload))
        return True

    cdef inline void _buffer(self, Py_ssize_t i, object payload) noexcept:
        self.held[i] = 1
        self.payloads[i] = payload  # replaces None: nothing is released
        self.size += 1

    cdef object _overflow(self, int64_t s):
        return WindowOverflow(
            f"seq {s} is beyond the receive window (delivered {self.delivered}, "
            f"capacity {self.capacity})"
        )

    cdef int _overflow_after(self, int64_t s, list delivered) except -1:
        """Raise the overflow of ``s``, telling what a batch delivered before it."""
        exc = self._overflow(s)
        exc.delivered = delivered
        raise exc

    def receive(self, object seq, object payload):
        """Take ``seq``; returns ``(status, deliverable)``.

        ACCEPTED: ``seq`` was the next one; it and every buffered consecutive successor are
        returned in order, as a list of ``(seq, payload)``, and ``delivered`` advances.
        BUFFERED: held for later. DUPLICATE: ``seq <= delivered`` or already buffered; nothing
        changes. Those two deliver nothing: an empty tuple. Raises ``WindowOverflow`` when
        ``seq > delivered + capacity``.
        """
        cdef int64_t s = _int_arg(seq, "seq", 1, C_MAX_SEQ)
        cdef list out
        cdef Py_ssize_t i
        if s <= self.delivered:
            return DUPLICATE_NOTHING
        if s - self.delivered > self.capacity:
            raise self._overflow(s)
        if s == self.delivered + 1:
            out = sigwindow_list_with_room(1 + self._run_after_base())
            out.append((seq, payload))
            self._advance()
            while self._take_next(out):
                pass
            return (C_ACCEPTED, out)
        i = self._slot(s)
        if self.held[i]:
            return DUPLICATE_NOTHING
        self._buffer(i, payload)
        return BUFFERED_NOTHING

    def receive_many(self, object frames):
        """``receive(seq, payload)`` for each ``(seq, payload)`` of ``frames`` in turn; returns
        the payloads delivered, in order. Their sequences follow on: the first is
        ``delivered + 1`` as it was before the call, the last ``delivered`` after it.

        A pair beyond the window raises ``WindowOverflow`` whose ``delivered`` holds the
        payloads the pairs before it delivered; the rest are not looked at. A malformed pair
        raises before anything changes.
        """
        cdef object fast = _frames(frames)
        cdef Py_ssize_t stopped, n = PySequence_Fast_GET_SIZE(fast)
        # Most pairs deliver one payload each: room for that many spares growing the list.
        cdef list out = sigwindow_list_with_room(n)
        cdef sigwindow_pair on_stack[FRAMES_ON_STACK]
        cdef sigwindow_pair* pairs = _pairs_buffer(n, on_stack)
        cdef sigwindow_rx state
        try:
            _frame_pairs(fast, pairs)
            state.ring = sigwindow_ring(<PyObject*>self.payloads)
            state.held = self.held
            state.capacity = self.capacity
            state.base = self.base_slot
            state.size = self.size
            state.delivered = self.delivered
            stopped = sigwindow_receive_run(&state, pairs, n, <PyObject*>out)
            self.base_slot = state.base
            self.size = state.size
            self.delivered = state.delivered
            if stopped < 0:
                raise MemoryError()
            if stopped < n:
                self._overflow_after(pairs[stopped].seq, out)
        finally:
            if pairs != on_stack:
                free(pairs)
        return out

    def sacks(self, object limit=32):
        """Buffered sequences, ascending, at most ``limit`` (the selective acks to send)."""
        cdef Py_ssize_t lim = <Py_ssize_t>_int_arg(limit, "limit", 0, C_MAX_SEQ)
        cdef list out = []
        cdef Py_ssize_t seen = 0, i
        cdef int64_t seq
        if lim > self.size:
            lim = self.size
        seq = self.delivered + 2
        i = self.base_slot + 1
        if i == self.capacity:
            i = 0
        # The scan ends on the last of them: at most ``capacity`` slots on.
        while seen < lim:
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
        self.base_slot = <Py_ssize_t>((d + 1) % self.capacity)
