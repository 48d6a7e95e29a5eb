-- GCRA check, atomically, with the same integer arithmetic as native/_gcra.pyx.
-- KEYS[1]  the key's theoretical arrival time (TAT), integer microseconds as a string
-- ARGV[1]  emission interval (microseconds)
-- ARGV[2]  burst
-- ARGV[3]  cost
-- ARGV[4]  now in microseconds, or "" to use the Redis server's clock
-- ARGV[5]  extra milliseconds of key lifetime (0 in production; tests with an injected clock
--          keep keys a little longer than real time would, which changes no answer because a
--          TAT at or before "now" counts as no state)
-- Returns {allowed (1/0), tat, now}: tat is the stored TAT after an allowed check, else
-- max(stored, now). The caller derives remaining / retry_after / reset_after from these.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[4])
end

local tat = now
local stored = tonumber(redis.call('GET', KEYS[1]) or '')
if stored and stored > now then
  tat = stored
end
local new_tat = tat + cost * interval
if new_tat - interval * burst > now then
  return {0, tat, now}
end
if new_tat > now then
  -- %.0f keeps all 16 digits; tostring() would round to 14 significant digits.
  local ttl = math.ceil((new_tat - now) / 1000) + tonumber(ARGV[5])
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
end
return {1, new_tat, now}
