-- Move delayed jobs that are due onto the stream; each entry remembers when it became ready.
-- KEYS: 1 delayed zset, 2 stream
-- ARGV: 1 now, 2 max jobs to move
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZREM', KEYS[1], due[i])
  redis.call('XADD', KEYS[2], '*', 'k', due[i], 't', due[i + 1])
end
return #due / 2
