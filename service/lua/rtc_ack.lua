-- A call member acknowledges its downlink: every message up to a cumulative sequence (never
-- above what was handed out) and the selectively acknowledged ones leave its outbox.
-- KEYS: 1 the call's hash, 2 the member's outbox. ARGV: 1 member, 2 cumulative, 3.. sacks
-- Returns the member's cumulative acknowledgement now (0 for an unknown call).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local sent = tonumber(redis.call('HGET', KEYS[1], 'out:' .. ARGV[1]) or '0')
local acked = tonumber(redis.call('HGET', KEYS[1], 'ack:' .. ARGV[1]) or '0')
local cumulative = math.min(tonumber(ARGV[2]), sent)
if cumulative > acked then
  acked = cumulative
  redis.call('HSET', KEYS[1], 'ack:' .. ARGV[1], acked)
end
local gone = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  if tonumber(field) <= acked then gone[#gone + 1] = field end
end
for i = 3, #ARGV do gone[#gone + 1] = ARGV[i] end
if #gone > 0 then redis.call('HDEL', KEYS[2], unpack(gone)) end
return acked
