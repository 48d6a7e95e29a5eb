-- Append one entry to a support room's log: the next offset of the current epoch, in one step.
-- The TTL rule is support_room_send_many.lua's: the keys live for the retention plus the slack
-- from the head's `kept` time; a single append (rare: the desk's own notices) always renews them.
-- KEYS: 1 stream, 2 head hash {epoch, offset, kept} (one hash tag: the room),
--       3 the news stream of all rooms (one server only: a cluster adds the news itself)
-- ARGV: 1 payload, 2 a fresh random epoch (used only when a new one starts),
--       3 approximate maximum length, 4 retention (ms), 5 the room's name,
--       6 the news stream's approximate maximum length, 7 the retention's slack (ms)
-- Returns {epoch, offset}.
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local last = tonumber(redis.call('HGET', KEYS[2], 'offset') or '0')
-- No head (dropped, expired, Redis lost its data), or a head whose stream is gone: the past is
-- lost, so offsets start again under a new epoch and no client takes them for the old ones.
if not epoch or (last > 0 and redis.call('EXISTS', KEYS[1]) == 0) then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', 0)
end
local offset = redis.call('HINCRBY', KEYS[2], 'offset', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], string.format('%d-0', offset),
  'p', ARGV[1], 'e', epoch)
local time = redis.call('TIME')
redis.call('HSET', KEYS[2], 'kept', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
local lifetime = tonumber(ARGV[4]) + tonumber(ARGV[7])
redis.call('PEXPIRE', KEYS[1], lifetime)
redis.call('PEXPIRE', KEYS[2], lifetime)
-- News for every process's hub: which room moved, to which offset.
if KEYS[3] then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'r', ARGV[5], 'o', offset)
end
return {epoch, offset}
