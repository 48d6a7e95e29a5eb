# cython: language_level=3
"""The edge's hot path in C: RSGI fast routes, the access log line, the HTTP counters.

A fast route's answer (``service/fast_routes.py``) costs granian about 15 us per request; the
edge's protections written as Python steps cost twice that again (request id, CORS fields, the
app-wide rate limit, the answer's fields, metrics, degrade mode's latency sample and the JSON
access log line), so kervan's hottest answer was slower than the Node service it replaces.
``FastFront`` runs the same steps for the common case as one compiled coroutine and hands every
other case, before it has done anything the Python steps would do again, to the Python path
(``service/rsgi/app.py``): a degrade-mode shed, a rate-limit refusal or a shadow/degraded
decision, a route that has no answer in memory, a handler that raised, a GET with a body,
trusted proxies.

``AccessLines`` formats access log lines byte for byte as the ``orjson`` dict the Python path
dumped (``tests/reference/edgepath_ref.py`` is the oracle), into one buffer the access log hands
to its writer thread. ``observe`` counts one answered request into ``HttpStats``' dicts.
``native.edgepath`` is the public, validating entry point.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.contextvars cimport PyContextVar_Reset, PyContextVar_Set
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport uint64_t
from libc.stdio cimport snprintf
from libc.math cimport fabs, nearbyint
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

import time

import orjson

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object text)
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* ptype) except NULL
    double PyOS_string_to_double(const char* s, char** endptr, object overflow_exception) except? -1.0
    void PyMem_Free(void* p)
    void* PyMem_Realloc(void* p, size_t n)
    int Py_DTSF_ADD_DOT_0

cdef extern from "time.h" nogil:
    struct tm:
        int tm_sec
        int tm_min
        int tm_hour
        int tm_mday
        int tm_mon
        int tm_year
    ctypedef long time_t
    tm* gmtime_r(const time_t* timep, tm* result)

#: The HTTP latency histogram's bucket bounds in seconds (``service.metrics`` exports them).
HTTP_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
)
cdef double[13] LATENCY_BOUNDS = HTTP_LATENCY_BUCKETS
cdef Py_ssize_t N_BOUNDS = 13

#: The fields of a fast reply's request the Python path reads (``service/fast_routes.py``).
cdef str _LOGGER = "kervan.access"


# --- clocks --------------------------------------------------------------------------------
cdef inline double _monotonic() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef inline long long _epoch_ms() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <long long>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


def monotonic() -> float:
    """The clock ``FastFront`` times requests with (``time.perf_counter``'s on Linux)."""
    return _monotonic()


def timestamp(long long ms):
    """``ms`` (milliseconds since the epoch) as the log's ISO 8601 UTC time."""
    return _timestamp(ms)


cdef str _timestamp(long long ms):
    cdef char[40] out
    cdef tm parts
    cdef time_t seconds = <time_t>(ms // 1000)
    cdef int millis = <int>(ms % 1000)
    if millis < 0:  # floor division for times before the epoch
        millis += 1000
        seconds -= 1
    if gmtime_r(&seconds, &parts) == NULL:
        raise OverflowError(f"no UTC time for {ms} ms")
    cdef int n = snprintf(
        out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00",
        parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
        parts.tm_hour, parts.tm_min, parts.tm_sec, millis,
    )
    return out[:n].decode("ascii")


# --- the access log line -------------------------------------------------------------------
cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _grow(Buffer* buf, Py_ssize_t need) except -1:
    cdef Py_ssize_t capacity = buf.capacity * 2 if buf.capacity else 65536
    while capacity < need:
        capacity *= 2
    cdef char* data = <char*>PyMem_Realloc(buf.data, capacity)
    if data == NULL:
        raise MemoryError()
    buf.data = data
    buf.capacity = capacity
    return 0


cdef inline int _put(Buffer* buf, const char* data, Py_ssize_t n) except -1:
    if buf.size + n > buf.capacity:
        _grow(buf, buf.size + n)
    memcpy(buf.data + buf.size, data, n)
    buf.size += n
    return 0


cdef const char* _HEX = "0123456789abcdef"


cdef int _put_json_str(Buffer* buf, str text) except -1:
    """``text`` as a JSON string, escaped as orjson escapes it."""
    _put(buf, b'"', 1)
    _put_json_inner(buf, text)
    _put(buf, b'"', 1)
    return 0


cdef int _put_json_inner(Buffer* buf, str text) except -1:
    """``text`` escaped as inside a JSON string (orjson's escapes; non-ASCII text as UTF-8)."""
    cdef Py_ssize_t n, i, start
    cdef const char* data
    cdef unsigned char c
    cdef char[6] escape
    if not PyUnicode_IS_ASCII(text):
        encoded = orjson.dumps(text)
        _put(buf, <const char*>encoded + 1, len(encoded) - 2)
        return 0
    data = PyUnicode_AsUTF8AndSize(text, &n)
    start = 0
    for i in range(n):
        c = <unsigned char>data[i]
        if c >= 0x20 and c != 34 and c != 92:
            continue
        if i > start:
            _put(buf, data + start, i - start)
        start = i + 1
        if c == 34:
            _put(buf, b'\\"', 2)
        elif c == 92:
            _put(buf, b'\\\\', 2)
        elif c == 10:
            _put(buf, b'\\n', 2)
        elif c == 13:
            _put(buf, b'\\r', 2)
        elif c == 9:
            _put(buf, b'\\t', 2)
        elif c == 8:
            _put(buf, b'\\b', 2)
        elif c == 12:
            _put(buf, b'\\f', 2)
        else:
            escape[0] = 92  # backslash
            escape[1] = 117  # u
            escape[2] = 48
            escape[3] = 48
            escape[4] = _HEX[c >> 4]
            escape[5] = _HEX[c & 15]
            _put(buf, escape, 6)
    if n > start:
        _put(buf, data + start, n - start)
    return 0


cdef int _put_ascii(Buffer* buf, str text) except -1:
    """``text`` known to need no escaping (digits, fixed names)."""
    cdef Py_ssize_t n
    cdef const char* data = PyUnicode_AsUTF8AndSize(text, &n)
    _put(buf, data, n)
    return 0


cdef int _put_milliseconds(Buffer* buf, double seconds) except -1:
    """``round(seconds * 1000, 3)`` as ``repr`` (and orjson) write it: correctly rounded to
    three decimals (Python's ``round``), then the shortest text that reads back the same."""
    cdef double value = seconds * 1000.0  # what Python's round() is given
    cdef double thousandths = value * 1000.0
    cdef double nearest
    cdef long long units
    cdef char[48] text
    cdef int n
    if 0.0 <= value < 1e9:
        nearest = nearbyint(thousandths)
        # Below 1e12 the product is off the exact one by under 2e-4: unless it lies that close
        # to a tie, its nearest integer is the correctly rounded result.
        if fabs(thousandths - nearest) < 0.4995:
            units = <long long>nearest
            n = snprintf(text, 48, "%lld.%03lld", units // 1000, units % 1000)
            # A three-decimal value with at most 12 digits reads back as itself: repr drops
            # the trailing zeros but keeps one digit after the point.
            while n > 0 and text[n - 1] == 48 and text[n - 2] != 46:
                n -= 1
            _put(buf, text, n)
            return 0
    return _put_milliseconds_exactly(buf, value)


cdef int _put_milliseconds_exactly(Buffer* buf, double value) except -1:
    cdef char* fixed = PyOS_double_to_string(value, b'f', 3, 0, NULL)
    cdef double rounded
    try:
        rounded = PyOS_string_to_double(fixed, NULL, None)
    finally:
        PyMem_Free(fixed)
    cdef char* text = PyOS_double_to_string(rounded, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    cdef Py_ssize_t n = 0
    try:
        while text[n] != 0:
            n += 1
        _put(buf, text, n)
    finally:
        PyMem_Free(text)
    return 0


cdef class AccessLines:
    """The access log's buffered lines (see ``service/access_log.py``, which owns the writer).

    ``direct``: lines are written here (the logs are JSON at INFO); else the access log's
    ``logging`` path writes them. ``dropping``: the writer is too far behind, new lines are
    dropped (the access log counts them). ``scheduled``: a flush of the buffer is due already.
    """

    cdef Buffer buf
    cdef long long _ms
    cdef str _ts
    cdef public bint direct
    cdef public bint dropping
    cdef public bint scheduled

    def __cinit__(self):
        self.buf.data = NULL
        self.buf.size = 0
        self.buf.capacity = 0

    def __dealloc__(self):
        PyMem_Free(self.buf.data)

    def __init__(self):
        self._ms = -1
        self._ts = ""

    @property
    def size(self) -> int:
        return self.buf.size

    cdef str _now(self):
        cdef long long ms = _epoch_ms()
        if ms != self._ms:
            self._ts = _timestamp(ms)
            self._ms = ms
        return self._ts

    cpdef Py_ssize_t record(
        self,
        str method,
        str path,
        str route,
        long status,
        double elapsed,
        str client_ip,
        str request_id,
    ) except -1:
        """Append one request's line; returns the buffer's size after it."""
        cdef Buffer* buf = &self.buf
        cdef char[24] number
        cdef int n = snprintf(number, 24, "%ld", status)
        _put(buf, b'{"ts":"', 7)
        _put_ascii(buf, self._now())
        _put(buf, b'","level":"info","logger":"kervan.access","msg":', 48)
        # "msg": "<method> <path> <status>", written in place
        _put(buf, b'"', 1)
        _put_json_inner(buf, method)
        _put(buf, b' ', 1)
        _put_json_inner(buf, path)
        _put(buf, b' ', 1)
        _put(buf, number, n)
        _put(buf, b'"', 1)
        _put(buf, b',"request_id":', 14)
        _put_json_str(buf, request_id)
        _put(buf, b',"method":', 10)
        _put_json_str(buf, method)
        _put(buf, b',"path":', 8)
        _put_json_str(buf, path)
        _put(buf, b',"route":', 9)
        _put_json_str(buf, route)
        _put(buf, b',"status":', 10)
        _put(buf, number, n)
        _put(buf, b',"duration_ms":', 15)
        _put_milliseconds(buf, elapsed)
        _put(buf, b',"client_ip":', 13)
        _put_json_str(buf, client_ip)
        _put(buf, b'}\n', 2)
        return buf.size

    def add(self, bytes line) -> int:
        """Append a line made elsewhere (it ends with a newline); returns the size."""
        _put(&self.buf, line, len(line))
        return self.buf.size

    def take(self) -> bytes:
        """Everything buffered, which is then empty."""
        chunk = PyBytes_FromStringAndSize(self.buf.data, self.buf.size)
        self.buf.size = 0
        return chunk


# --- HTTP counters -------------------------------------------------------------------------
cpdef int observe(dict requests, dict latency, str method, str route, long status,
                  double elapsed) except -1:
    """One answered request into ``HttpStats``' dicts (see ``service/metrics.py``): the count per
    (method, route, status), and per (method, route) the latency bucket (``bisect_left`` over
    the bounds, the last one is +Inf) and the sum."""
    key = (method, route, status)
    cdef PyObject* found = PyDict_GetItem(requests, key)
    if found == NULL:
        requests[key] = 1
    else:
        requests[key] = <object>found + 1
    pair = (method, route)
    found = PyDict_GetItem(latency, pair)
    if found == NULL:
        held = ([0] * (N_BOUNDS + 1), [0.0])
        PyDict_SetItem(latency, pair, held)
    else:
        held = <object>found
    cdef Py_ssize_t i = 0
    while i < N_BOUNDS and LATENCY_BOUNDS[i] < elapsed:
        i += 1
    counts = <list>held[0]
    total = <list>held[1]
    counts[i] = counts[i] + 1
    total[0] = total[0] + elapsed
    return 0


# --- the RSGI fast path ----------------------------------------------------------------------
cdef inline bint _valid_request_id(str text):
    """``^[A-Za-z0-9._:-]{1,128}$``"""
    cdef Py_ssize_t n = len(text)
    cdef Py_UCS4 c
    if n < 1 or n > 128:
        return False
    for c in text:
        if not (
            (c >= 48 and c <= 57)  # 0-9
            or (c >= 65 and c <= 90)  # A-Z
            or (c >= 97 and c <= 122)  # a-z
            or c == 46 or c == 95 or c == 58 or c == 45  # . _ : -
        ):
            return False
    return True


def valid_request_id(str text) -> bool:
    """Whether ``text`` is a request id a client may choose (``^[A-Za-z0-9._:-]{1,128}$``)."""
    return _valid_request_id(text)


def peer_host(str client) -> str:
    """The host of RSGI's ``host:port`` (``service.rsgi.scope.peer_host``)."""
    return _peer_host(client)


cdef str _peer_host(str client):
    """The host of RSGI's ``host:port`` (IPv6 in brackets), as ``service.rsgi.scope``."""
    cdef Py_ssize_t colon = client.rfind(":")
    host = client[:colon] if colon >= 0 else ""
    if host.startswith("["):
        return host[1:len(host) - 1]
    return host


cdef object _ANSWERED = object()


cdef class HeldReply:
    """A fast route handler's answer to one query string, held while ``source.get(key) is
    value`` (the handler's own freshness test): the front sends ``reply`` and adds
    ``increments`` to ``counts`` item by item, exactly as the handler would, without calling
    it, unless the request carries ``If-None-Match`` (then the handler decides between 200 and
    304). The reply's status, body and fields (in RSGI's str form) are read once, here."""

    cdef readonly dict source
    cdef readonly object key
    cdef readonly object value
    cdef readonly object reply
    cdef readonly list counts
    cdef readonly tuple increments
    cdef long status
    cdef bytes body
    cdef list fields
    cdef list raw_fields

    def __init__(self, dict source, key, value, reply, list counts, tuple increments):
        if len(increments) > len(counts):
            raise ValueError("more increments than counts")
        for increment in increments:
            if type(increment) is not int:
                raise TypeError("increments must be ints")
        self.source = source
        self.key = key
        self.value = value
        self.reply = reply
        self.counts = counts
        self.increments = increments
        self.status = reply.status
        self.body = reply.body
        self.fields = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in reply.headers]
        self.raw_fields = list(reply.headers)


cdef inline void _set(list items, Py_ssize_t at, object item):
    Py_INCREF(item)
    PyList_SET_ITEM(items, at, item)


cdef inline Py_ssize_t _fill(list items, Py_ssize_t at, list source):
    for item in source:
        _set(items, at, item)
        at += 1
    return at


cdef class FastFront:
    """granian's RSGI target: fast routes here, everything else to ``slow`` (the Python app).

    ``configure`` (when the runtime starts) takes the edge's state; ``disable`` (when it stops)
    sends everything to ``slow`` again.
    """

    cdef public object slow
    cdef bint enabled
    cdef dict routes
    cdef object request_id_var
    cdef object request_type
    cdef object http
    cdef dict http_requests
    cdef dict http_latency
    cdef object overload
    cdef object record_duration
    cdef object durations
    cdef object access_log
    cdef AccessLines lines
    cdef object log_record
    cdef tuple exempt
    cdef tuple own_cors
    cdef object limiter_check
    cdef str policy
    cdef str policy_item
    cdef str policy_quoted
    cdef bint policy_shown
    cdef frozenset origins
    cdef list cors_simple
    cdef dict cors_allowed
    cdef list tail
    cdef dict converted
    cdef str id_prefix
    cdef bytes id_prefix_b
    cdef const char* id_prefix_c
    cdef uint64_t id_count
    cdef object general
    cdef object resolve_ip
    # The same fields as bytes, for the ASGI front.
    cdef bytes policy_item_raw
    cdef list cors_simple_raw
    cdef dict cors_allowed_raw
    cdef list tail_raw
    cdef object proxies

    def __init__(self, slow, general, request_id_var, request_type, str id_prefix,
                 uint64_t id_start):
        self.slow = slow
        self.general = general
        self.request_id_var = request_id_var
        self.request_type = request_type
        if not id_prefix.isascii() or len(id_prefix) > 16:
            raise ValueError("id_prefix must be at most 16 ASCII characters")
        self.id_prefix = id_prefix
        self.id_prefix_b = id_prefix.encode("ascii")
        self.id_prefix_c = self.id_prefix_b
        self.id_count = id_start
        self.enabled = False
        self.converted = {}
        self.cors_allowed = {}

    def configure(
        self,
        *,
        dict routes,
        http,
        overload,
        access_log,
        AccessLines lines,
        tuple exempt,
        tuple own_cors,
        limiter_check,
        str policy,
        str policy_item,
        bint policy_shown,
        frozenset origins,
        list cors_simple,
        list tail,
        resolve_ip,
    ):
        self.routes = routes
        self.http = http
        self.http_requests = http.requests
        self.http_latency = http.latency
        self.overload = overload
        self.record_duration = None
        self.durations = None
        if overload is not None:
            if overload.monotonic is time.monotonic:  # the clock of _monotonic()
                self.durations = overload.durations
            else:
                self.record_duration = overload.record
        self.access_log = access_log
        self.lines = lines
        self.log_record = access_log.record
        self.exempt = exempt
        self.own_cors = own_cors
        self.limiter_check = limiter_check
        self.policy = policy
        self.policy_quoted = f'"{policy}"'
        self.policy_item = policy_item
        self.policy_shown = policy_shown
        self.origins = origins
        self.cors_simple = cors_simple
        self.cors_allowed = {}
        self.tail = tail
        self.resolve_ip = resolve_ip
        self.policy_item_raw = policy_item.encode("latin-1")
        self.cors_simple_raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in cors_simple]
        self.cors_allowed_raw = {}
        self.tail_raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in tail]
        self.converted = {}
        self.enabled = True

    def disable(self):
        self.enabled = False
        self.routes = None

    def __rsgi_init__(self, loop):
        return self.slow.__rsgi_init__(loop)

    def __rsgi_del__(self, loop):
        return self.slow.__rsgi_del__(loop)

    def next_request_id(self):
        return self._next_id()

    cdef str _next_id(self):
        cdef char[40] text
        self.id_count += 1
        cdef int n = snprintf(text, 40, "%s%016llx", self.id_prefix_c, <unsigned long long>self.id_count)
        return text[:n].decode("ascii")

    cdef list _str_list(self, list headers):
        """A prebuilt header list in RSGI's str form, converted once per list object."""
        cdef PyObject* held = PyDict_GetItem(self.converted, id(headers))
        if held != NULL and (<tuple>held)[0] is headers:
            return (<tuple>held)[1]
        if len(self.converted) >= 256:
            self.converted.clear()
        made = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
        self.converted[id(headers)] = (headers, made)
        return made

    cdef list _cors(self, str origin):
        cdef PyObject* found = PyDict_GetItem(self.cors_allowed, origin)
        if found != NULL:
            return <list>found
        if origin in self.origins:
            made = [*self.cors_simple, ("access-control-allow-origin", origin)]
            if len(self.cors_allowed) < 1024:
                self.cors_allowed[origin] = made
            return made
        return self.cors_simple

    async def __call__(self, scope, protocol):
        rest = self.take(scope, protocol)
        if rest is not None:
            await rest

    cpdef object take(self, scope, protocol):
        """Answer the request now, synchronously, when it is a fast route's common case
        (``None``); else the coroutine that answers it (not started): the Python path, going
        on with what was decided here, or ``slow``. Run outside a task, this is the whole of a
        fast answer (``service/rsgi/inline.py``)."""
        cdef double started
        if self.enabled and scope.proto == "http" and scope.method == "GET":
            started = _monotonic()
            path = scope.path
            route = self.routes.get(path)
            if route is not None:
                headers = scope.headers
                if (
                    "content-length" not in headers
                    and "transfer-encoding" not in headers
                    and (self.overload is None or not self.overload.shedding)
                ):
                    outcome = self._serve(scope, protocol, path, route, headers, started)
                    if outcome is _ANSWERED:
                        return None
                    # Handed over: the Python path goes on with the decision taken here.
                    return self.general(scope, protocol, path, route, headers, started, outcome)
        return self.slow(scope, protocol)

    cdef object _serve(self, scope, protocol, str path, route, headers, double started):
        """``_ANSWERED``, or what the Python path must go on with: the rate limit's decision,
        or ``None`` when no limit was checked. Nothing the Python path does again has been
        done when it is handed over (the handler answers the same request the same way)."""
        ip = self.resolve_ip(scope.client, headers) if self.resolve_ip is not None else _peer_host(scope.client)
        decision = self._decide(path, ip)
        if decision is not None and (not decision[1] or decision[5]):
            return decision  # refused, shadow-refused or degraded: the Python path answers
        extra_limit = self._limit_state(decision) if decision is not None else None
        request_id = self._request_id(headers.get("x-request-id"))
        cdef HeldReply held = None
        if "if-none-match" not in headers:
            held = self._held(route.held, scope.query_string)
        if held is not None:
            return self._answer(
                scope, protocol, path, route, headers, started, ip, request_id, extra_limit,
                held.status, held.fields, held.body,
            )
        reply = self._ask(route, request_id, scope.query_string, headers)
        if reply is None:
            return decision
        return self._answer(
            scope, protocol, path, route, headers, started, ip, request_id, extra_limit,
            reply.status, self._str_list(reply.headers), reply.body,
        )

    cdef object _answer(self, scope, protocol, str path, route, headers, double started,
                        str ip, str request_id, str extra_limit, long status, list own,
                        bytes body):
        cdef list cors = None
        origin = headers.get("origin")
        if origin is not None and not (self.own_cors and path.startswith(self.own_cors)):
            cors = self._cors(origin)
        cdef Py_ssize_t n = len(own) + 1 + (len(cors) if cors is not None else 0)
        n += (2 if extra_limit is not None else 0) + len(self.tail)
        # The answer's fields in the Python path's order: the reply's, the request id, CORS,
        # the rate limit's, the edge's fixed ones.
        cdef list answer = PyList_New(n)
        cdef Py_ssize_t at = 0
        at = _fill(answer, at, own)
        _set(answer, at, ("x-request-id", request_id))
        at += 1
        if cors is not None:
            at = _fill(answer, at, cors)
        if extra_limit is not None:
            _set(answer, at, ("ratelimit-policy", self.policy_item))
            _set(answer, at + 1, ("ratelimit", extra_limit))
            at += 2
        _fill(answer, at, self.tail)
        # Synchronous from here to the end: no observer ever sees this request in flight.
        try:
            protocol.response_bytes(status, answer, body)
        finally:
            self._leave(path, route.template, status, ip, request_id, started)
        return _ANSWERED

    # --- steps both fronts take ------------------------------------------------------------
    cdef object _decide(self, str path, str ip):
        """The app-wide rate limit's decision for ``ip``, or ``None`` when none applies:
        ``(policy, allowed, remaining, retry_after, reset_after, degraded)``."""
        if self.limiter_check is None or path.startswith(self.exempt):
            return None
        return self.limiter_check(self.policy, ip)

    cdef str _limit_state(self, decision):
        """RateLimit's value, or ``None`` when the policy is not shown: ``"<policy>";
        r=<remaining>;t=<whole seconds to a full bucket, rounded up>``
        (``service.ratelimit.headers.state_item``)."""
        if not self.policy_shown:
            return None
        cdef long long r = decision[2]
        cdef long long micros = decision[4]
        cdef char[64] digits
        if micros < 0:
            return f'"{self.policy}";r={r};t={-(-micros // 1000000)}'
        cdef int n = snprintf(digits, 64, ";r=%lld;t=%lld", r, (micros + 999999) // 1000000)
        return self.policy_quoted + digits[:n].decode("ascii")

    cdef str _request_id(self, incoming):
        """The client's request id when it is a sane one, else a new one (``Edge.request_id``)."""
        if incoming is not None and _valid_request_id(incoming):
            return incoming
        return self._next_id()

    cdef HeldReply _held(self, dict held, str query):
        """The reply held for ``query`` (``HeldReply``) while it is current, its counts added;
        else ``None`` (ask the handler). Callers ask the handler for conditional requests."""
        if not held:
            return None
        cdef PyObject* found = PyDict_GetItem(held, query)
        if found == NULL or type(<object>found) is not HeldReply:
            return None
        cdef HeldReply entry = <HeldReply>found
        if entry.source.get(entry.key) is not entry.value:
            return None
        cdef list counts = entry.counts
        cdef Py_ssize_t i = 0
        for increment in entry.increments:
            counts[i] = counts[i] + increment
            i += 1
        return entry

    cdef object _ask(self, route, str request_id, str query, headers):
        """The route's handler's reply (``None``: no answer in memory, or it raised, and the
        Python path asks it again and answers the failure), with the request id set for logs."""
        token = PyContextVar_Set(self.request_id_var, request_id)
        try:
            return route.handler(self.request_type(query, headers))
        except Exception:
            return None
        finally:
            PyContextVar_Reset(self.request_id_var, token)

    cdef int _leave(self, str path, str template, long status, str ip, str request_id,
                    double started) except -1:
        cdef double elapsed = _monotonic() - started
        observe(self.http_requests, self.http_latency, "GET", template, status, elapsed)
        if self.durations is not None:
            self.durations.append((_monotonic(), elapsed))
        elif self.record_duration is not None:
            self.record_duration(elapsed)
        cdef AccessLines lines = self.lines
        if not lines.direct:
            self.log_record("GET", path, template, status, elapsed, ip, request_id)
        elif lines.dropping:
            self.access_log.drop()
        else:
            size = lines.record("GET", path, template, status, elapsed, ip, request_id)
            if not lines.scheduled or size >= 65536:
                self.access_log.appended(size)
        return 0


cdef bytes _X_REQUEST_ID = b"x-request-id"
cdef bytes _ORIGIN = b"origin"
cdef bytes _IF_NONE_MATCH = b"if-none-match"
cdef bytes _CONTENT_LENGTH = b"content-length"
cdef bytes _TRANSFER_ENCODING = b"transfer-encoding"
cdef bytes _PREFLIGHT = b"access-control-request-method"


cdef class AsgiFront(FastFront):
    """The same front for granian's ASGI interface: ``slow`` is the ASGI app, ``general(scope,
    receive, send, decided)`` carries on a fast route's request the front began (the edge's
    Python steps with the rate limit's decision taken here)."""

    #: The type of awaitable granian's ``send`` returns when it has nothing left to do
    #: (``_complete``).
    cdef public object ready

    def __rsgi_init__(self, loop):
        raise TypeError("an ASGI front")

    def __rsgi_del__(self, loop):
        raise TypeError("an ASGI front")

    async def __call__(self, scope, receive, send):
        if _DECIDED not in scope:
            rest = self._take(scope, send)
            if rest is None:
                return
            if rest is not PASS:
                await rest
                return
        if _DECIDED in scope:
            # Begun here or by ``take`` (in granian's loop callback): the edge's Python steps
            # go on with what was decided.
            await self.general(scope, receive, send, scope.pop(_DECIDED))
            return
        await self.slow(scope, receive, send)

    cpdef object take(self, scope, protocol):
        """Answer the request now when it is a fast route's common case (``None``), or begin
        to (the coroutine that sends the rest, when granian's ``send`` did not complete at
        once); else ``PASS``: granian's own path runs the app on it, and ``__call__`` finds
        what was decided here in the scope (``_DECIDED``) and hands it to ``general``."""
        return self._take(scope, protocol.send)

    cdef object _take(self, scope, send):
        cdef double started
        if self.enabled and scope["type"] == "http" and scope["method"] == "GET":
            started = _monotonic()
            path = scope["path"]
            route = self.routes.get(path)
            if route is not None and (self.overload is None or not self.overload.shedding):
                outcome = self._serve_asgi(scope, path, route, started)
                if type(outcome) is tuple and len(<tuple>outcome) == 6:
                    return self._send_now(<tuple>outcome, send, path, route, started)
                if outcome is not _DECLINED:
                    scope[_DECIDED] = outcome
        return PASS

    cdef object _send_now(self, tuple answer, send, str path, route, double started):
        """Send ``answer`` with ``send``, synchronously while its awaitables are complete
        ones (``ready``, granian's empty awaitable): ``None`` once sent, else the coroutine
        that awaits the rest (any other server's ``send``). The client leaving is no error:
        answered already (as the edge's Python path)."""
        self.http.in_flight += 1
        cdef bint body_sent = False
        try:
            pending = send({"type": "http.response.start", "status": answer[0],
                            "headers": answer[1]})
            if self._complete(pending):
                body_sent = True
                pending = send({"type": "http.response.body", "body": answer[2]})
                if self._complete(pending):
                    pending = None
        except Exception:
            pending = None
        if pending is not None:
            return self._sending(pending, body_sent, answer, send, path, route, started)
        self.http.in_flight -= 1
        self._leave(path, route.template, answer[0], answer[4], answer[3], started)
        return None

    cdef bint _complete(self, pending):
        """Whether ``pending`` (what granian's ``send`` returned) is granian's empty awaitable,
        which has nothing left to wait for; its type is learnt by name the first time (granian
        does not export it) and compared by identity after that."""
        cdef object kind = type(pending)
        if kind is self.ready:
            return True
        if self.ready is None and kind.__name__ == "PyEmptyAwaitable" and (
            kind.__module__ == "granian._granian"
        ):
            self.ready = kind
            return True
        return False

    async def _sending(self, pending, bint body_sent, tuple answer, send, str path, route,
                       double started):
        try:
            await pending
            if not body_sent:
                await send({"type": "http.response.body", "body": answer[2]})
        except Exception:
            pass
        finally:
            self.http.in_flight -= 1
            self._leave(path, route.template, answer[0], answer[4], answer[3], started)

    cdef object _serve_asgi(self, dict scope, str path, route, double started):
        """``(status, fields, body, request id, ip, 0)`` to send, ``_DECLINED`` (nothing
        done: the app takes the request), or what the edge's Python steps go on with: the
        rate limit's decision, or ``None``."""
        incoming = origin = None
        cdef bint conditional = False
        for name, value in <list>scope["headers"]:
            if name == _X_REQUEST_ID:
                if incoming is None:
                    incoming = value
            elif name == _ORIGIN:
                if origin is None:
                    origin = value
            elif name == _IF_NONE_MATCH:
                conditional = True
            elif name == _CONTENT_LENGTH or name == _TRANSFER_ENCODING:
                return _DECLINED  # a body the route leaves unread: the edge ends it cleanly
        if self.resolve_ip is None:
            peer = scope.get("client")
            ip = peer[0] if peer else "0.0.0.0"
        else:
            ip = self.resolve_ip(scope)
        decision = self._decide(path, ip)
        if decision is not None and (not decision[1] or decision[5]):
            return decision
        extra_limit = self._limit_state(decision) if decision is not None else None
        request_id = self._request_id(
            (<bytes>incoming).decode("latin-1") if incoming is not None else None
        )
        query = scope["query_string"].decode("latin-1")
        cdef HeldReply held = None if conditional else self._held(route.held, query)
        if held is not None:
            status, own, body = held.status, held.raw_fields, held.body
        else:
            reply = self._ask(route, request_id, query, _AsgiLookup(scope["headers"]))
            if reply is None:
                return decision
            status, own, body = reply.status, reply.headers, reply.body
        cdef list fields = list(own)
        fields.append((_X_REQUEST_ID, request_id.encode("latin-1")))
        if origin is not None and not (self.own_cors and path.startswith(self.own_cors)):
            fields += self._cors_raw(origin)
        if extra_limit is not None:
            fields.append((b"ratelimit-policy", self.policy_item_raw))
            fields.append((b"ratelimit", extra_limit.encode("latin-1")))
        fields += self.tail_raw
        return (status, fields, body, request_id, ip, 0)

    cdef list _cors_raw(self, bytes origin):
        cdef PyObject* found = PyDict_GetItem(self.cors_allowed_raw, origin)
        if found != NULL:
            return <list>found
        if origin.decode("latin-1") in self.origins:
            made = [*self.cors_simple_raw, (b"access-control-allow-origin", origin)]
            if len(self.cors_allowed_raw) < 1024:
                self.cors_allowed_raw[origin] = made
            return made
        return self.cors_simple_raw


cdef object _DECLINED = object()
#: ``take``'s answer when granian's own path must run the app on the request.
PASS = object()
#: The scope key carrying ``take``'s decision to ``__call__`` (ASGI apps may add their own keys).
cdef str _DECIDED = "kervan.front.decided"


cdef class _AsgiLookup:
    """A fast handler's header lookup over an ASGI header list (``service.fast_routes``)."""

    cdef list raw

    def __init__(self, list raw):
        self.raw = raw

    def get(self, str key, default=None):
        cdef bytes name = key.encode("latin-1")
        for found, value in self.raw:
            if found == name:
                return (<bytes>value).decode("latin-1")
        return default
