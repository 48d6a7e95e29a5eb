-- Count one failure for a lockout key, locking and escalating as core/ratelimit/lockout.py's
-- record_failure does (same fields, same integer-microsecond arithmetic).
-- KEYS[1]  the key's state hash: f failures, w window end, l level, u locked until,
--          e level expiry
-- KEYS[2]  index of locks (sorted set: member -> locked until), so operators can list locks
--          without scanning the keyspace
-- ARGV[1]  threshold   ARGV[2] window   ARGV[3] forget   ARGV[4] now or "" (server clock)
-- ARGV[5]  extra milliseconds of key lifetime   ARGV[6] index member
-- ARGV[7..] lock durations, one per escalation level
-- Returns {locked_now (1/0), f, w, l, u, e, now}.
local threshold = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local forget = tonumber(ARGV[3])
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[4])
end
local slack = tonumber(ARGV[5])

local s = redis.call('HMGET', KEYS[1], 'f', 'w', 'l', 'u', 'e')
local f = tonumber(s[1] or '') or 0
local w = tonumber(s[2] or '') or 0
local l = tonumber(s[3] or '') or 0
local u = tonumber(s[4] or '') or 0
local e = tonumber(s[5] or '') or 0

if u > now then
  return {0, f, w, l, u, e, now}
end

local function save(expires_at)
  redis.call('HSET', KEYS[1],
    'f', string.format('%.0f', f), 'w', string.format('%.0f', w),
    'l', string.format('%.0f', l), 'u', string.format('%.0f', u),
    'e', string.format('%.0f', e))
  redis.call('PEXPIRE', KEYS[1], math.ceil((expires_at - now) / 1000) + slack)
end

if e <= now then
  l = 0
end
if w <= now then
  f = 0
  w = now + window
end
f = f + 1
if f < threshold then
  u = 0
  if l == 0 then
    e = 0
  end
  save(math.max(w, e))
  return {0, f, w, l, u, e, now}
end

local steps = #ARGV - 6
local step = l
if step > steps - 1 then
  step = steps - 1
end
u = now + tonumber(ARGV[7 + step])
l = l + 1
e = u + forget
f = 0
w = 0
save(e)
-- Expired locks leave the index here and when operators list it, so it stays small.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
redis.call('ZADD', KEYS[2], string.format('%.0f', u), ARGV[6])
return {1, f, w, l, u, e, now}
