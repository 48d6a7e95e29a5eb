-- The server ends a call (its room closed, nobody answered): the notice goes to both members'
-- outboxes, whatever their windows hold, once: a call already ended (or not in the state asked
-- for) is left alone.
-- KEYS: 1 the call's hash, 2 the caller's outbox, 3 the callee's outbox, 4 the room's current
-- ARGV: 1 reason, 2 payload, 3 now, 4 lifetime (ms), 5 call id, 6 required state ('' = any)
-- Returns {} when nothing changed, else {caller, caller's seq, callee, callee's seq}.
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'ended' or (ARGV[6] ~= '' and state ~= ARGV[6]) then return {} end
local people = redis.call('HMGET', KEYS[1], 'caller', 'callee')
local a = redis.call('HINCRBY', KEYS[1], 'out:' .. people[1], 1)
redis.call('HSET', KEYS[2], a, ARGV[2])
local b = redis.call('HINCRBY', KEYS[1], 'out:' .. people[2], 1)
redis.call('HSET', KEYS[3], b, ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'ended', 'ended', ARGV[3], 'reason', ARGV[1])
if redis.call('GET', KEYS[4]) == ARGV[5] then redis.call('DEL', KEYS[4]) end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return {people[1], a, people[2], b}
