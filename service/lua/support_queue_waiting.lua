-- Read-only: everyone waiting, in queue order, in one consistent snapshot.
-- KEYS (the same for every support_queue_* script, all under the hash tag {sup}):
--   1 wait (zset customer -> join sequence)   2 seq (counter)   3 joined (zset customer -> time)
--   4 gone (zset customer -> grace end)       5 free (zset admin -> free since)
--   6 a2c (hash admin -> customer)            7 c2a (hash customer -> admin)
--   8 at (hash admin -> assigned at)          9 stats (hash ewma, spread, count)
--   10 ver (counter)
-- Returns a flat list: customer, joined at, grace end ('' when connected), ...
local out = {}
for _, customer in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = customer
  out[#out + 1] = redis.call('ZSCORE', KEYS[3], customer) or ''
  out[#out + 1] = redis.call('ZSCORE', KEYS[4], customer) or ''
end
return out
