-- A client's message into a support room, at most once per client id, in one step: when the
-- marker of (sender, client id) exists, the message was stored before and its place is returned;
-- otherwise it is appended (as support_room_append.lua) and the marker set to its place.
-- KEYS: 1 stream, 2 head hash {epoch, offset}, 3 the client id's marker (one hash tag: the room),
--       4 the news stream (one server only: a cluster adds the news itself)
-- ARGV: 1 payload, 2 a fresh random epoch (used only when a new one starts),
--       3 approximate maximum length, 4 retention (ms), 5 the marker's lifetime (ms),
--       6 the room's name, 7 the news stream's approximate maximum length
-- Returns {epoch, offset, 1 when a duplicate else 0}.
local seen = redis.call('GET', KEYS[3])
if seen then
  local cut = string.find(seen, ':', 1, true)
  return {string.sub(seen, 1, cut - 1), tonumber(string.sub(seen, cut + 1)), 1}
end
local head = redis.call('HMGET', KEYS[2], 'epoch', 'offset')
local epoch = head[1]
local last = tonumber(head[2] or '0')
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
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
-- News for every process's hub: which room moved, to which offset.
if KEYS[4] then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'r', ARGV[6], 'o', offset)
end
redis.call('SET', KEYS[3], epoch .. ':' .. offset, 'PX', ARGV[5])
return {epoch, offset, 0}
