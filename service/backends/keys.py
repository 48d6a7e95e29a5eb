"""Every state-backend key prefix and TTL, in one place.

Keys are relative: the stores prepend ``<KERVAN_REDIS_NAMESPACE>:`` themselves. Keep every
prefix here so a key's owner and lifetime can be found with one search, and so that no code
ever needs to scan the keyspace (no KEYS, no SCAN over patterns).
"""

from __future__ import annotations

# --- foundation ---
WORKER_HEARTBEAT = "worker:heartbeat"  # hash: worker id -> unix time of last beat
WORKER_HEARTBEAT_TTL = 120.0
READY_PROBE = "ready:probe"

# --- ratelimit ---
RATELIMIT_GCRA = "rl:gcra"  # string per policy and key: theoretical arrival time (µs); PX to it
RATELIMIT_LOCKOUT = "rl:lock"  # hash per rule and key: failures, window, level, lock; PX to forget
RATELIMIT_LOCKOUT_INDEX = "rl:locks"  # zset: "rule|key" -> locked until (µs), for listing locks

# --- speculation ---
FLOW_SESSION_LAST = "flow:last"  # string per session id: its last page view {seg, path, ts}
SPECULATION_ANSWER = "spec:answer"  # string per seg and mode: rules JSON, ETag, time, data version
SPECULATION_ANSWER_TTL_PERIODS = 3  # answers outlive 3 refresh periods (a stalled refresher shows)
SPECULATION_REFRESH_LOCK = "spec:lock"  # string per seg and mode: owner token during a refresh
SPECULATION_REFRESH_LOCK_TTL = 120.0  # a crashed refresher's lock frees itself

# --- consent ---

# --- queue ---
QUEUE_JOB = "q:job"  # hash per job key: record, attempts, lease, status (done: key only, TTL)
QUEUE_STREAM = "q:stream"  # stream per queue: ready and in-flight entries (acked ones deleted)
QUEUE_DELAYED = "q:delayed"  # zset per queue: job key -> due time
QUEUE_DEAD = "q:dead"  # zset per queue, and one for all queues: job key -> time of death
QUEUE_DEAD_ALL = "q:dead-all"
QUEUE_GROUP = "workers"  # the consumer group every worker joins

# --- whatsapp ---
WHATSAPP_LIVE_CHANNEL = "wa:live"  # pub/sub: new CRM messages and status changes (JSON)

# --- images ---

# --- support queue ---
# Every key of the waiting queue carries the hash tag {sup}, so all of them stay in one slot
# (the Lua scripts touch them together) if the state ever moves to Redis Cluster. No TTLs: the
# queue's state lives as long as the desk does.
SUPPORT_QUEUE_WAITING = "{sup}:wait"  # zset: waiting customer -> join sequence (rank = position)
SUPPORT_QUEUE_SEQUENCE = "{sup}:seq"  # counter: the last join sequence handed out
SUPPORT_QUEUE_JOINED = "{sup}:joined"  # zset: waiting customer -> joined at (unix seconds)
SUPPORT_QUEUE_DISCONNECTED = "{sup}:gone"  # zset: disconnected waiting customer -> grace end
SUPPORT_QUEUE_FREE = "{sup}:free"  # zset: free admin -> free since (lowest = longest free)
SUPPORT_QUEUE_ADMIN_CUSTOMER = "{sup}:a2c"  # hash: admin -> the customer it serves
SUPPORT_QUEUE_CUSTOMER_ADMIN = "{sup}:c2a"  # hash: customer -> the admin serving it
SUPPORT_QUEUE_ASSIGNED_AT = "{sup}:at"  # hash: admin -> when it took its customer
SUPPORT_QUEUE_STATS = "{sup}:stats"  # hash: ewma, spread, count of handle times
SUPPORT_QUEUE_VERSION = "{sup}:ver"  # counter: bumped by every change of waiting or assignments

# --- support desk ---
SUPPORT_DESK_CHANNEL = "sup:desk"  # pub/sub: queue changes, assignments, presence, typing (JSON)
SUPPORT_PERSON = "sup:person"  # string per person id: name, role, language (JSON)
SUPPORT_RESUME = "sup:resume"  # string per SHA-256 of a customer's resume token: the person id
SUPPORT_CLIENT_ID = "sup:cid"  # string per sender and client id: "<epoch>:<offset>" once stored
SUPPORT_CLIENT_ID_TTL = 86_400.0  # a client resending later than a day is a new message
SUPPORT_PRESENCE = "sup:presence"  # hash: admin id -> {"status", "seen", "name"} (JSON)
SUPPORT_PRESENCE_STALE = 3  # sweep periods without a beat: the admin's process is gone

# --- support rooms ---
SUPPORT_ROOM_STREAM = "sup:room"  # stream per room: entry id "<offset>-0", fields p (payload), e
SUPPORT_ROOM_HEAD = "sup:roomhead"  # hash per room: epoch, offset (the last one handed out)
SUPPORT_ROOM_SIGNAL = "sup:roomsignal"  # memory backend only: wakes blocked readers on appends
SUPPORT_ROOM_MAXLEN = 10_000  # entries kept per room (trimmed approximately on Redis)
SUPPORT_ROOM_RETENTION = 7 * 86_400.0  # a room idle this long is forgotten (refreshed by appends)
SUPPORT_ROOM_NEWS = "sup:roomnews"  # stream: one entry per append {r: room, o: offset}, so a hub
SUPPORT_ROOM_NEWS_MAXLEN = 100_000  # reads only rooms with news instead of every room it serves

# --- call signaling ---
# Every key of one call carries its room as a hash tag ({rtc:<room>}), so the scripts that touch
# a call's keys together stay in one slot on Redis Cluster. The two indexes are separate keys,
# updated by separate commands (never inside a script with the call's keys).
RTC_TAG = "rtc"  # "{rtc:<room>}" tags: call:<call> (hash), out:<call>:<person> (hash), current
RTC_CHANNEL = "rtc:news"  # pub/sub: {"r": room, "c": call, "to": person} when a peer has news
RTC_RINGING = "rtc:ringing"  # zset: "<room>|<call>" -> ring deadline (unix seconds)
RTC_ACTIVE = "rtc:active"  # zset: "<room>|<call>" -> start (unix seconds), calls not ended

# --- admins ---
# Shared by every kind of principal ("admin" now, site members later): "<prefix>:<kind>:...".
AUTH_OTP = "auth:otp"  # string per kind and name: salt, HMAC of the code, expiry; TTL = the code's
AUTH_SESSION = "auth:sess"  # hash per kind and SHA-256 of the token: the session; TTL = idle limit
AUTH_SESSION_INDEX = "auth:sessions"  # hash per kind and principal id: public id -> token hash
AUTH_SESSION_REFRESH = "auth:refresh"  # string per session and period: one refresh write per period
