-- Clients' messages into support rooms in one call (the sends of one event-loop turn of one
-- process): each at most once per client id (when the marker of (sender, client id) exists,
-- the message was stored before and its place is returned), otherwise appended with the next
-- offset of its room's current epoch (a new epoch when the room's log was lost, as in
-- support_room_append.lua) and the marker set to its place. Messages are taken in the order
-- given, so two sends to one room get offsets in that order, and a client id given twice is
-- stored once. One news entry tells every room that moved: a field `r:<room>` per room, its
-- value the room's newest offset. A message stored (not a duplicate) with a history record
-- adds the record to the history stream in the same step, so the database's writer (a
-- consumer group, in the worker) gets every stored message once it runs, whatever happens to
-- the process that took it.
-- A message costs five commands (this runs for every chat message, and the commands inside
-- a script are most of Redis's work): the head (HMGET), the marker checked and set in one
-- step (SET NX GET, with the place the message will take), the offset (HINCRBY), the entry
-- (XADD; NOMKSTREAM once the room has entries, so a stream lost under its head is seen
-- without an EXISTS) and the history record. The retention TTL of the room's keys is
-- renewed only when the head's `kept` time is older than the slack: the keys then live for
-- the retention plus the slack, so a room is never forgotten sooner than the retention after
-- its last message (nor later than that plus the slack).
-- One server: any number of messages, the news and the history streams. A cluster: one
-- message a call (its keys share the room's hash tag) without the news and history streams,
-- which the caller adds to after.
-- KEYS: per message i (from 0): 3i+1 stream, 3i+2 head hash {epoch, offset, kept}, 3i+3 the
--       client id's marker; then (one server only) the news stream of all rooms and the
--       history stream
-- ARGV: 1 approximate maximum length, 2 retention (ms), 3 the news stream's approximate
--       maximum length, 4 a fresh random epoch (used only by rooms whose log starts anew; an
--       epoch names one room's log, so rooms may share the name), 5 the history stream's
--       approximate maximum length, 6 the retention's slack (ms);
--       then per message i (from 0): 7+4i payload, 8+4i the room's name, 9+4i the marker's
--       lifetime (ms), 10+4i the history record ('' for none)
-- Returns {epoch, offset, 1 when a duplicate else 0} per message, flat.
local count = math.floor(#KEYS / 3)
local news = KEYS[3 * count + 1]
local history = KEYS[3 * count + 2]
local slack = tonumber(ARGV[6])
local lifetime = tonumber(ARGV[2]) + slack
local now
local out = {}
local moved, rooms = {}, {}
for i = 0, count - 1 do
  local stream, head, marker = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local found = redis.call('HMGET', head, 'epoch', 'offset', 'kept')
  local epoch = found[1]
  local last = epoch and tonumber(found[2] or '0') or 0
  local offset = last + 1
  local place = (epoch or ARGV[4]) .. ':' .. offset
  local seen = redis.call('SET', marker, place, 'NX', 'GET', 'PX', ARGV[9 + 4 * i])
  if seen then
    local cut = string.find(seen, ':', 1, true)
    out[#out + 1] = string.sub(seen, 1, cut - 1)
    out[#out + 1] = tonumber(string.sub(seen, cut + 1))
    out[#out + 1] = 1
  else
    local payload = ARGV[7 + 4 * i]
    -- A new stream (its first entry) always gets the TTL: the head may hold a recent `kept`
    -- from before its stream was lost.
    local kept = last > 0 and tonumber(found[3] or '0') or 0
    local added = false
    if epoch then
      redis.call('HINCRBY', head, 'offset', 1)
      local id = string.format('%d-0', offset)
      if last == 0 then
        added = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[1], id, 'p', payload, 'e', epoch)
      else
        added = redis.call('XADD', stream, 'NOMKSTREAM', 'MAXLEN', '~', ARGV[1], id,
          'p', payload, 'e', epoch)
      end
    end
    if not added then
      -- No head (dropped, expired, Redis lost its data), or a head whose stream is gone: the
      -- past is lost, so offsets start again under a new epoch.
      epoch, offset, kept = ARGV[4], 1, 0
      redis.call('DEL', stream)
      redis.call('HSET', head, 'epoch', epoch, 'offset', offset)
      redis.call('XADD', stream, 'MAXLEN', '~', ARGV[1], '1-0', 'p', payload, 'e', epoch)
      redis.call('SET', marker, epoch .. ':1', 'PX', ARGV[9 + 4 * i])
    end
    if not now then
      local time = redis.call('TIME')
      now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    end
    if now - kept >= slack or kept > now then  -- (a clock set back: renewed too)
      redis.call('HSET', head, 'kept', now)
      redis.call('PEXPIRE', stream, lifetime)
      redis.call('PEXPIRE', head, lifetime)
    end
    local room = ARGV[8 + 4 * i]
    if not moved[room] then
      rooms[#rooms + 1] = room
    end
    moved[room] = offset
    local record = ARGV[10 + 4 * i]
    if history and record ~= '' then
      redis.call('XADD', history, 'MAXLEN', '~', ARGV[5], '*', 'h', record)
    end
    out[#out + 1] = epoch
    out[#out + 1] = offset
    out[#out + 1] = 0
  end
end
if news and #rooms > 0 then
  local fields = {}
  for _, room in ipairs(rooms) do
    fields[#fields + 1] = 'r:' .. room
    fields[#fields + 1] = moved[room]
  end
  redis.call('XADD', news, 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
end
return out
