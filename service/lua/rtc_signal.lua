-- One signaling message of a call member, taken in order and once (service/rtc/signals.py has
-- the rules; service/rtc/signals_memory.py is the same logic in Python and the contract suite
-- holds both to it).
-- KEYS: 1 the call's hash, 2 the recipient's outbox (hash seq -> payload), 3 the room's current
--       call (string); all three carry the room's hash tag.
-- ARGV: 1 kind, 2 sender, 3 recipient, 4 seq, 5 payload, 6 relay (1/0), 7 capacity,
--       8 lifetime (ms), 9 now (unix seconds), 10 call id, 11 room, 12 media,
--       13 mark connected (1/0), 14 reason
-- Returns {status, received, downlink seq, state, created (1/0), ended (1/0)}.
local kind, sender, recipient = ARGV[1], ARGV[2], ARGV[3]
local seq = tonumber(ARGV[4])
local ttl = ARGV[8]
local created = 0
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  if kind ~= 'call:start' then return {'unknown', 0, 0, '', 0, 0} end
  local current = redis.call('GET', KEYS[3])
  if current and current ~= ARGV[10] then return {'busy', 0, 0, '', 0, 0} end
  redis.call('HSET', KEYS[1], 'room', ARGV[11], 'caller', sender, 'callee', recipient,
    'media', ARGV[12], 'state', 'ringing', 'started', ARGV[9])
  redis.call('SET', KEYS[3], ARGV[10], 'PX', ttl)
  state = 'ringing'
  created = 1
end
local people = redis.call('HMGET', KEYS[1], 'caller', 'callee')
local caller, callee = people[1], people[2]
local peer = nil
if sender == caller then peer = callee elseif sender == callee then peer = caller end
if peer == nil or peer ~= recipient then return {'forbidden', 0, 0, state, 0, 0} end
local last = tonumber(redis.call('HGET', KEYS[1], 'in:' .. sender) or '0')
if seq <= last then return {'duplicate', last, 0, state, 0, 0} end
if seq > last + 1 then return {'gap', last, 0, state, 0, 0} end
if state == 'ended' then
  redis.call('HSET', KEYS[1], 'in:' .. sender, seq)
  return {'ended', seq, 0, state, 0, 0}
end
-- The transition table of _transition() in signals_memory.py.
local allowed, new_state = true, state
local from_callee = sender == callee
if kind == 'call:start' then
  allowed = created == 1
elseif kind == 'call:accept' then
  allowed = from_callee and state == 'ringing'; new_state = 'active'
elseif kind == 'call:reject' then
  allowed = from_callee and state == 'ringing'; new_state = 'ended'
elseif kind == 'call:end' then
  new_state = 'ended'
end
if not allowed then
  redis.call('HSET', KEYS[1], 'in:' .. sender, seq)
  return {'refused', seq, 0, state, 0, 0}
end
local relay = ARGV[6] == '1'
if relay then
  local sent = tonumber(redis.call('HGET', KEYS[1], 'out:' .. recipient) or '0')
  local acked = tonumber(redis.call('HGET', KEYS[1], 'ack:' .. recipient) or '0')
  if sent - acked >= tonumber(ARGV[7]) then return {'overflow', last, 0, state, 0, 0} end
end
redis.call('HSET', KEYS[1], 'in:' .. sender, seq)
local out = 0
if relay then
  out = redis.call('HINCRBY', KEYS[1], 'out:' .. recipient, 1)
  redis.call('HSET', KEYS[2], out, ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if ARGV[13] == '1' then redis.call('HSET', KEYS[1], 'connected', 1) end
local ended = 0
if new_state ~= state then
  if new_state == 'active' then
    redis.call('HSET', KEYS[1], 'accepted', ARGV[9])
  elseif new_state == 'ended' then
    ended = 1
    local reason = ARGV[14]
    if reason == '' then reason = string.sub(kind, 6) end
    redis.call('HSET', KEYS[1], 'ended', ARGV[9], 'reason', reason)
    if redis.call('GET', KEYS[3]) == ARGV[10] then redis.call('DEL', KEYS[3]) end
  end
  redis.call('HSET', KEYS[1], 'state', new_state)
  state = new_state
end
redis.call('PEXPIRE', KEYS[1], ttl)
return {'accepted', seq, out, state, created, ended}
