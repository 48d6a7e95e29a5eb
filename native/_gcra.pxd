# Declarations of the GCRA kernel, shared with ``native/_limiter.pyx`` (which calls ``run``
# directly, without a Python call or a result tuple).

from cpython.object cimport PyObject
from libc.stdint cimport int64_t

cdef struct Slot:
    PyObject* key
    Py_hash_t hash
    int64_t tat

cdef struct Outcome:
    bint allowed
    int64_t remaining
    int64_t retry_after
    int64_t reset_after

#: Bound of every time and duration (about 146,000 years of microseconds).
cdef inline int64_t max_micros() noexcept nogil:
    return (<int64_t>1) << 62

cdef class GcraTable:
    cdef Slot* slots
    cdef Py_ssize_t nslots
    cdef Py_ssize_t size
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t evictions

    cdef Py_ssize_t _find(self, object key, Py_hash_t h)
    cdef int _resize(self, Py_ssize_t new_nslots) except -1
    cdef int _evict(self, int64_t now) except -1
    cdef int _store(self, object key, Py_hash_t h, Py_ssize_t i, int64_t tat, int64_t now) except -1
    cdef int run(
        self, object key, int64_t now, int64_t interval, int64_t burst, int64_t cost, Outcome* out
    ) except -1
