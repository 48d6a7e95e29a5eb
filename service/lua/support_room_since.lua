-- What a client at (epoch, offset) missed in a support room, as one consistent snapshot.
-- KEYS: 1 stream, 2 head hash {epoch, offset}
-- ARGV: 1 the client's epoch, 2 the client's offset, 3 limit (0: only the epoch and last offset),
--       4 a fresh random epoch (used only when a new one starts), 5 retention (ms)
-- Returns {epoch, last offset, recovered (0/1), entries [{id, {field, value, ...}}, ...]}.
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local last = tonumber(redis.call('HGET', KEYS[2], 'offset') or '0')
-- The same rule as the append script: a lost past starts a new epoch.
if not epoch or (last > 0 and redis.call('EXISTS', KEYS[1]) == 0) then
  epoch = ARGV[4]
  last = 0
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
local after = tonumber(ARGV[2])
if epoch ~= ARGV[1] or after > last then
  return {epoch, last, 0, {}}
end
local limit = tonumber(ARGV[3])
if after == last or limit == 0 then
  return {epoch, last, 1, {}}
end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first == 0 or tonumber(string.match(first[1][1], '^(%d+)')) > after + 1 then
  return {epoch, last, 0, {}}
end
local entries = redis.call('XRANGE', KEYS[1], string.format('%d-0', after + 1), '+', 'COUNT', limit)
return {epoch, last, 1, entries}
