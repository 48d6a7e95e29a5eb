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
