-- Start an attempt of a delivered (or reclaimed) stream entry: consume an attempt, bump the
-- lease (fencing token) and return the job. Entries whose job is gone or finished are dropped.
-- KEYS: 1 job hash, 2 stream
-- ARGV: 1 entry id, 2 group, 3 worker id, 4 now
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then
  redis.call('XACK', KEYS[2], ARGV[2], ARGV[1])
  redis.call('XDEL', KEYS[2], ARGV[1])
  return false
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HINCRBY', KEYS[1], 'lease', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'entry', ARGV[1], 'worker', ARGV[3],
  'started_at', ARGV[4])
return redis.call('HMGET', KEYS[1], 'queue', 'payload', 'attempts', 'max_attempts', 'lease',
  'enqueued_at', 'history', 'timeout')
