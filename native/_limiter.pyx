# cython: language_level=3
"""Compiled front of the in-process rate limiter: one C call per check.

``LimiterFront.check(name, key, cost=1)`` looks up the named policy, reads the clock, runs the
GCRA kernel (``native._gcra``) on the policy's table, counts the check (and the refusal), and
returns the caller's decision type (a 6-field tuple subclass: policy, allowed, remaining,
retry_after, reset_after, degraded) built in place. From Python that is one call where the
plain path makes three frames, a float clock reading, a result tuple and a named-tuple copy:
with one hot key the plain path costs three times the kernel itself.

A shadow policy's refusal is counted here and then handed to a Python callback (logging is
rare and belongs to the service); an unknown policy name is handed to another callback, which
raises the service's error. ``native.limiter`` is the public, validating entry point.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.long cimport PyLong_CheckExact, PyLong_FromLongLong
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from native._gcra cimport GcraTable, Outcome, max_micros

cdef extern from *:
    """
    /* Allocates an instance of a tuple subclass with n empty items (what tuple.__new__ does
       for a subclass, minus the intermediate tuple). From 3.14 tuples cache their hash, and
       "not computed yet" is -1, not the 0 tp_alloc leaves. */
    static PyObject* kervan_alloc_tuple_of(PyTypeObject* type, Py_ssize_t n) {
        PyObject* op = type->tp_alloc(type, n);
    #if PY_VERSION_HEX >= 0x030E0000
        if (op != NULL) {
            ((PyTupleObject*)op)->ob_hash = -1;
        }
    #endif
        return op;
    }
    """
    object kervan_alloc_tuple_of(PyTypeObject* type, Py_ssize_t n)
    long long PyLong_AsLongLongAndOverflow(object value, int* overflow) except? -1

cdef int64_t MAX_MICROS = max_micros()
cdef Py_ssize_t DECISION_FIELDS = 6


cdef class Counters:
    """Per-policy counters the front increments (read by the metrics collector)."""

    cdef public long long checks
    cdef public long long refused
    cdef public long long shadow_refused
    cdef public long long failures


cdef class _Entry:
    cdef object policy
    cdef int64_t interval
    cdef int64_t burst
    cdef bint shadow
    cdef GcraTable table
    cdef Counters counters


cdef inline int64_t _system_micros() except? -1:
    cdef timespec ts
    if clock_gettime(CLOCK_REALTIME, &ts) != 0:
        raise OSError("clock_gettime(CLOCK_REALTIME) failed")
    return <int64_t>ts.tv_sec * 1000000 + ts.tv_nsec // 1000


cdef class LimiterFront:
    """Named policies over GCRA tables; see the module docstring."""

    cdef dict entries
    cdef object clock_now
    cdef object decision_type
    cdef object on_unknown
    cdef object on_shadow

    def __cinit__(self, type decision_type not None, clock_now, on_unknown, on_shadow):
        # The wrapper (native.limiter) checks the type's fields; a tuple subclass is required
        # here because its items are written in place.
        if not issubclass(decision_type, tuple):
            raise TypeError("decision_type must be a tuple subclass")
        self.entries = {}
        self.decision_type = decision_type
        self.clock_now = clock_now
        self.on_unknown = on_unknown
        self.on_shadow = on_shadow

    def add(
        self,
        str name not None,
        policy,
        int64_t interval,
        int64_t burst,
        bint shadow,
        GcraTable table not None,
        Counters counters not None,
    ):
        if interval < 1 or interval > MAX_MICROS:
            raise ValueError(f"interval must be within 1..{MAX_MICROS}, got {interval}")
        if burst < 1 or burst > MAX_MICROS // interval:
            raise ValueError(f"burst must be within 1..{MAX_MICROS // interval}, got {burst}")
        cdef _Entry entry = _Entry.__new__(_Entry)
        entry.policy = policy
        entry.interval = interval
        entry.burst = burst
        entry.shadow = shadow
        entry.table = table
        entry.counters = counters
        self.entries[name] = entry

    cdef int64_t _now(self) except? -1:
        if self.clock_now is None:
            return _system_micros()
        cdef object micros = round(self.clock_now() * 1000000)
        cdef int64_t now = micros
        if now < 0 or now > MAX_MICROS:
            raise ValueError(f"the clock is out of range: {micros} µs")
        return now

    def check(self, str name not None, str key not None, object cost=1):
        """Consume ``cost`` units of policy ``name`` for ``key``; returns a decision."""
        cdef PyObject* found = PyDict_GetItem(self.entries, name)
        cdef _Entry entry
        cdef int64_t units = 0
        cdef int overflow = 0
        cdef Outcome out
        if found == NULL:
            self.on_unknown(name)
            raise KeyError(name)
        entry = <_Entry>found
        # type(cost) is int (bool is refused: True is not a count), within 0..burst.
        if PyLong_CheckExact(cost):
            units = PyLong_AsLongLongAndOverflow(cost, &overflow)
        if not PyLong_CheckExact(cost) or overflow or units < 0 or units > entry.burst:
            raise ValueError(f"cost must be an int within 0..{entry.burst} for {name!r}")
        entry.table.run(key, self._now(), entry.interval, entry.burst, units, &out)
        entry.counters.checks += 1
        decision = self._decision(entry, &out)
        if not out.allowed:
            if not entry.shadow:
                entry.counters.refused += 1
            else:
                entry.counters.shadow_refused += 1
                self.on_shadow(decision)
        return decision

    cdef object _decision(self, _Entry entry, Outcome* out):
        # Items first: nothing may allocate between the allocation and the filling in.
        allowed = True if out.allowed else False
        remaining = PyLong_FromLongLong(out.remaining)
        retry_after = PyLong_FromLongLong(out.retry_after)
        reset_after = PyLong_FromLongLong(out.reset_after)
        decision = kervan_alloc_tuple_of(<PyTypeObject*>self.decision_type, DECISION_FIELDS)
        _put(decision, 0, entry.policy)
        _put(decision, 1, allowed)
        _put(decision, 2, remaining)
        _put(decision, 3, retry_after)
        _put(decision, 4, reset_after)
        _put(decision, 5, False)
        return decision


cdef inline void _put(object decision, Py_ssize_t index, object item) noexcept:
    # PyTuple_SET_ITEM steals a reference; the caller keeps its own.
    Py_INCREF(item)
    PyTuple_SET_ITEM(decision, index, item)
