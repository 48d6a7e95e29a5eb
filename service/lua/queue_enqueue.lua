-- Idempotent enqueue: create the job record and make it ready (or delayed) in one step.
-- KEYS: 1 job hash, 2 stream, 3 delayed zset
-- ARGV: 1 job key, 2 queue, 3 payload json, 4 max attempts, 5 now, 6 due,
--       7 per-job timeout in seconds ('' = the queue's default)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'queue', ARGV[2], 'payload', ARGV[3], 'attempts', 0,
  'max_attempts', ARGV[4], 'lease', 0, 'enqueued_at', ARGV[5], 'status', 'queued',
  'history', '[]')
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'timeout', ARGV[7])
end
if tonumber(ARGV[6]) > tonumber(ARGV[5]) then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
else
  redis.call('XADD', KEYS[2], '*', 'k', ARGV[1], 't', ARGV[5])
end
return 1
