-- Drop a dead letter for good; its key may then be enqueued again.
-- KEYS: 1 job hash, 2 dead zset of the queue (one hash tag: the queue)
-- ARGV: 1 job key
if redis.call('HGET', KEYS[1], 'status') ~= 'dead' then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
