-- Queue a dead letter again with a fresh attempt budget (its history is kept).
-- KEYS: 1 job hash, 2 stream, 3 dead zset of the queue (one hash tag: the queue)
-- ARGV: 1 job key, 2 now
if redis.call('HGET', KEYS[1], 'status') ~= 'dead' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0)
redis.call('HDEL', KEYS[1], 'finished_at')
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'k', ARGV[1], 't', ARGV[2])
return 1
