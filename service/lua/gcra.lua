-- GCRA checks, atomically, with the same integer arithmetic as native/_gcra.pyx.
-- One call carries every check a process has queued (batching: one round trip for many
-- concurrent callers); each check is independent of the others.
-- KEYS[i]  the theoretical arrival time (TAT) of check i: integer microseconds as a string
-- ARGV[1]  now in microseconds, or "" to use the Redis server's clock
-- ARGV[2]  extra milliseconds of key lifetime (0 in production; tests with an injected clock
--          keep keys longer than real time would, which changes no answer because a TAT at or
--          before "now" counts as no state)
-- ARGV[3]  "interval burst cost" per check, space-separated, in KEYS order
-- Returns {now, allowed_1, tat_1, allowed_2, tat_2, ...}: allowed is 1 or 0; tat is the stored
-- TAT after an allowed check, else max(stored, now). The caller derives remaining, retry_after
-- and reset_after from these.
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local slack = tonumber(ARGV[2])

local results = {now}
local i = 0
for interval, burst, cost in string.gmatch(ARGV[3], '(%d+) (%d+) (%d+)') do
  i = i + 1
  interval = tonumber(interval)
  local tat = now
  local stored = tonumber(redis.call('GET', KEYS[i]) or '')
  if stored and stored > now then
    tat = stored
  end
  local new_tat = tat + tonumber(cost) * interval
  if new_tat - interval * tonumber(burst) > now then
    results[#results + 1] = 0
    results[#results + 1] = tat
  else
    if new_tat > now then
      -- %.0f keeps all 16 digits; tostring() would round to 14 significant digits.
      redis.call('SET', KEYS[i], string.format('%.0f', new_tat),
        'PX', math.ceil((new_tat - now) / 1000) + slack)
    end
    results[#results + 1] = 1
    results[#results + 1] = new_tat
  end
end
return results
