"""Every state-backend key prefix and TTL, in one place.

Keys are relative: the stores prepend ``<KERVAN_REDIS_NAMESPACE>:`` themselves. Keep every
prefix here so a key's owner and lifetime can be found with one search, and so that no code
ever needs to scan the keyspace (no KEYS, no SCAN over patterns).

Redis Cluster: keys that one Lua script or one MULTI/EXEC touches carry one hash tag
(``{<prefix>:<entity>}``: the part Redis hashes to pick a slot), so they live in one slot. Tags
name an entity (a job queue, a room, a call, a lockout shard) rather than a feature, so the load
spreads over the slots (the support waiting queue is one entity: ``{sup}``); the few keys without
an entity (indexes, news, channels) are touched by commands of their own. Keys that nothing
touches together carry no tag.
``tests/foundation/test_cluster_key_slots.py`` runs every script on a real cluster, which refuses
keys of two slots (CROSSSLOT).
"""

from __future__ import annotations

import zlib

# --- foundation ---
WORKER_HEARTBEAT = "worker:heartbeat"  # hash: worker id -> unix time of last beat
WORKER_HEARTBEAT_TTL = 120.0
READY_PROBE = "ready:probe"

# --- ratelimit ---
RATELIMIT_GCRA = "rl:gcra"  # string per policy and key: theoretical arrival time (µs); PX to it
# GCRA keys are single keys: a batched script call groups its checks by slot on a cluster.
# Lockouts are spread over RATELIMIT_LOCKOUT_SHARDS tags ``{rl:lock:<shard>}``: a key's state hash
# and the index of locks of its shard share the tag, so the failure script updates both at once.
RATELIMIT_LOCKOUT = "rl:lock"  # "{rl:lock:<shard>}:<rule>:<key>" hash: failures, window, level...
RATELIMIT_LOCKOUT_INDEX = "locks"  # "{rl:lock:<shard>}:locks" zset: "rule|key" -> locked until (µs)
RATELIMIT_LOCKOUT_SHARDS = 16


def lockout_tag(member: str) -> str:
    """The hash tag of a lockout's keys: ``member`` is ``"<rule>|<key>"``."""
    shard = zlib.crc32(member.encode()) % RATELIMIT_LOCKOUT_SHARDS
    return f"{{{RATELIMIT_LOCKOUT}:{shard}}}"


def lockout_tags() -> list[str]:
    """Every lockout shard's tag (listing locks reads each shard's index)."""
    return [f"{{{RATELIMIT_LOCKOUT}:{shard}}}" for shard in range(RATELIMIT_LOCKOUT_SHARDS)]


# --- speculation ---
FLOW_SESSION_LAST = "flow:last"  # string per session id: its last page view {seg, path, ts}
SPECULATION_ANSWER = "spec:answer"  # string per seg and mode: rules JSON, ETag, time, data version
SPECULATION_ANSWER_TTL_PERIODS = 3  # answers outlive 3 refresh periods (a stalled refresher shows)
SPECULATION_REFRESH_LOCK = "spec:lock"  # string per seg and mode: owner token during a refresh
SPECULATION_REFRESH_LOCK_TTL = 120.0  # a crashed refresher's lock frees itself

# --- consent ---

# --- queue ---
# Every key of one queue carries the queue as its hash tag ({q:<queue>}), so the scripts that
# move a job between its record, the stream and the sorted sets stay in one slot, and queues
# spread over slots. A job key is therefore unique within its queue on Redis (kervan's keys name
# their feature, so they never meet across queues). QUEUE_NAMES lists the queues ever used, for
# the dead letters of all queues and the lookup of a dead letter by its key alone.
QUEUE_TAG = "q"  # "{q:<queue>}:<part>" with the parts below
QUEUE_JOB = "job"  # hash per job key: record, attempts, lease, status (done: key only, TTL)
QUEUE_STREAM = "stream"  # stream: ready and in-flight entries (acked ones deleted)
QUEUE_DELAYED = "delayed"  # zset: job key -> due time
QUEUE_DEAD = "dead"  # zset: job key -> time of death
QUEUE_NAMES = "q:queues"  # set: every queue a producer or worker has used
QUEUE_GROUP = "workers"  # the consumer group every worker joins


def queue_key(queue: str, part: str, *rest: str) -> str:
    """A queue's key: ``{q:<queue>}:<part>[:<rest>...]``."""
    return ":".join((f"{{{QUEUE_TAG}:{queue}}}", part, *rest))


def queue_stream(queue: str) -> str:
    """The stream of ``queue`` (KEDA's ScaledObject names it too)."""
    return queue_key(queue, QUEUE_STREAM)


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
# Every key of one room carries the room as its hash tag ({sup:room:<room>}): its stream, its
# head and the client-id markers of messages sent into it, which one script touches together.
# The news stream is one key of its own: on a cluster the append script leaves it out and the
# news entry follows as a command of its own (service/support/roomlog_redis.py).
SUPPORT_ROOM_TAG = "sup:room"  # "{sup:room:<room>}:<part>"
SUPPORT_ROOM_STREAM = "log"  # stream per room: entry id "<offset>-0", fields p (payload), e
SUPPORT_ROOM_HEAD = "head"  # hash per room: epoch, offset (the last one handed out), kept (ms)
SUPPORT_ROOM_SIGNAL = "sup:roomsignal"  # memory backend only: wakes blocked readers on appends
SUPPORT_ROOM_MAXLEN = 10_000  # entries kept per room (trimmed approximately on Redis)
SUPPORT_ROOM_RETENTION = 7 * 86_400.0  # a room idle this long is forgotten (refreshed by appends)
#: Redis: a room's TTL is the retention plus this share of it, renewed by the first message
#: after that share has passed (not by every message: two commands less per chat message).
SUPPORT_ROOM_RETENTION_SLACK = 0.01
SUPPORT_ROOM_NEWS = "sup:roomnews"  # stream: {r: room, o: offset} or {r:<room>: offset...}: a hub
SUPPORT_ROOM_NEWS_MAXLEN = 100_000  # reads only rooms with news instead of every room it serves
# Chat messages on their way to the database: the send script adds each stored message's record
# in the same step (one server; a cluster adds them right after), the history writer (in the
# worker) reads them as a consumer group and deletes what the database took.
SUPPORT_HISTORY_STREAM = "sup:history"  # stream: {h: record (JSON)} per stored chat message
SUPPORT_HISTORY_GROUP = "writers"  # its consumer group
#: Records kept unwritten at most (trimmed approximately): about 300 MB of Redis memory with no
#: writer running at all; the readiness details show the backlog long before.
SUPPORT_HISTORY_MAXLEN = 1_000_000
SUPPORT_HISTORY_CLAIM_IDLE = 60.0  # s a taken record waits before another writer takes it over


def room_key(room: str, part: str, *rest: str) -> str:
    """A support room's key: ``{sup:room:<room>}:<part>[:<rest>...]``."""
    return ":".join((f"{{{SUPPORT_ROOM_TAG}:{room}}}", part, *rest))


# --- call signaling ---
# Every key of one call carries its room as a hash tag ({rtc:<room>}), so the scripts that touch
# a call's keys together stay in one slot on Redis Cluster. The two indexes are separate keys,
# updated by separate commands (never inside a script with the call's keys).
RTC_TAG = "rtc"  # "{rtc:<room>}" tags: call:<call> (hash), out:<call>:<person> (hash), current
RTC_CHANNEL = "rtc:news"  # pub/sub: {"r": room, "c": call, "to": person} when a peer has news
RTC_RINGING = "rtc:ringing"  # zset: "<room>|<call>" -> ring deadline (unix seconds)
RTC_ACTIVE = "rtc:active"  # zset: "<room>|<call>" -> start (unix seconds), calls not ended

# --- tracking ---
TRACKING_MAINTENANCE_LOCK = "trk:maintenance:lock"  # string: owner token of the running job
TRACKING_MAINTENANCE_LOCK_TTL = 900.0  # a crashed job's lock frees itself

# --- admins ---
# Shared by every kind of principal ("admin" now, site members later): "<prefix>:<kind>:...".
AUTH_OTP = "auth:otp"  # string per kind and name: salt, HMAC of the code, expiry; TTL = the code's
AUTH_SESSION = "auth:sess"  # hash per kind and SHA-256 of the token: the session; TTL = idle limit
AUTH_SESSION_INDEX = "auth:sessions"  # hash per kind and principal id: public id -> token hash
AUTH_SESSION_REFRESH = "auth:refresh"  # string per session and period: one refresh write per period
