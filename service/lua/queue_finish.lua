-- Record the outcome of an attempt, fenced by the lease: a worker that lost its lease (its
-- entry was reclaimed by another worker) changes nothing. The entry is acknowledged and
-- deleted so that the stream length stays equal to the backlog.
-- KEYS: 1 job hash, 2 stream, 3 delayed zset, 4 dead zset of the queue (one hash tag: the queue)
-- ARGV: 1 job key, 2 entry id, 3 group, 4 lease, 5 mode (done|retry|dead), 6 now, 7 due,
--       8 give back the attempt (0|1), 9 last error, 10 history json ('' = unchanged),
--       11 seconds to remember a done job's key
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[4] then
  return 0
end
redis.call('XACK', KEYS[2], ARGV[3], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[1], 'entry', 'worker', 'started_at')
local mode = ARGV[5]
if mode == 'done' then
  -- Only the key has to outlive the job (deduplication); drop the bulky fields now.
  redis.call('HDEL', KEYS[1], 'payload', 'history', 'last_error')
  redis.call('HSET', KEYS[1], 'status', 'done', 'finished_at', ARGV[6])
  redis.call('EXPIRE', KEYS[1], ARGV[11])
  return 1
end
redis.call('HSET', KEYS[1], 'last_error', ARGV[9])
if ARGV[10] ~= '' then
  redis.call('HSET', KEYS[1], 'history', ARGV[10])
end
if mode == 'retry' then
  if ARGV[8] == '1' then
    redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  end
  redis.call('HSET', KEYS[1], 'status', 'queued')
  if tonumber(ARGV[7]) > tonumber(ARGV[6]) then
    redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
  else
    redis.call('XADD', KEYS[2], '*', 'k', ARGV[1], 't', ARGV[6])
  end
  return 1
end
redis.call('HSET', KEYS[1], 'status', 'dead', 'finished_at', ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
return 1
