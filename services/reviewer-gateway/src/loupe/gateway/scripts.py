"""Redis Lua scripts: every queue and lease transition is one atomic script.

Keys are built inside the scripts from a prefix (``ARGV[1]``), so the gateway needs a single
Redis (or a cluster with one hash slot per deployment); see the service README.

Task hash ``<p>t:<task_id>`` fields: ``req`` (ReviewRequest JSON), ``item``, ``project``,
``rank`` (tier rank), ``overlap``, ``done`` (votes counted), ``active`` (live leases), ``score``
(queue score), ``skills`` (JSON list), ``status`` (open | complete | resolved | closed),
``created_ms``, ``confidence`` (the model's, '' when unknown; absent on tasks stored before it
existed). Queues are sorted sets ``<p>q:<rank>`` holding tasks with a free slot. A task's
leases are ``<p>holders:<task>`` (person -> lease, ``_LEASES``); ``<p>epoch`` is the last
fencing token issued.

What the gateway keeps for an item (``ITEM_KEYS`` per item, ``TASK_KEYS`` per task of it) lives
while one of its tasks is open or complete; once the last one settled (resolved or closed) every
one of those keys expires ``settled_retention_s`` later (``_ITEMS.settle_item``), and a key
written for the item afterwards (a late vote, an audit event, a newer label) gets the time the
item has left. A new task of the item makes them persistent again. A label or an audit event for
an item without a task in Redis is not kept (a label) or kept for the window only (an event).
"""

from __future__ import annotations

DEFAULT_SETTLED_RETENTION_S = 7 * 86_400
"""Seven days: the window in which people can still read a settled item from the gateway."""

ITEM_KEYS = ("itasks", "voters", "votes", "scored", "resolved", "hist", "comments")
"""Keys ``<p><name>:<item id>`` the gateway keeps for an item."""

TASK_KEYS = ("t", "skip", "holders")
"""Keys ``<p><name>:<task id>`` the gateway keeps for each task of an item."""

_ITEMS = (
    "local ITEM_KEYS = {"
    + ", ".join(f"'{name}:'" for name in ITEM_KEYS)
    + "}\nlocal TASK_KEYS = {"
    + ", ".join(f"'{name}:'" for name in TASK_KEYS)
    + "}\n"
    + """
local function item_keys(p, item)
  local keys = {}
  for _, name in ipairs(ITEM_KEYS) do keys[#keys + 1] = p .. name .. item end
  for _, id in ipairs(redis.call('ZRANGE', p .. 'itasks:' .. item, 0, -1)) do
    for _, name in ipairs(TASK_KEYS) do keys[#keys + 1] = p .. name .. id end
  end
  return keys
end

local function settle_item(p, item, keep_ms)
  -- once no task of the item is open or complete, every key of the item expires keep_ms after
  -- the item first settled (a later call keeps the time left); -1 while the item is open
  for _, id in ipairs(redis.call('ZRANGE', p .. 'itasks:' .. item, 0, -1)) do
    local status = redis.call('HGET', p .. 't:' .. id, 'status')
    if status == 'open' or status == 'complete' then return -1 end
  end
  local left = redis.call('PTTL', p .. 'itasks:' .. item)
  if left < 0 then left = tonumber(keep_ms) end
  for _, key in ipairs(item_keys(p, item)) do redis.call('PEXPIRE', key, left) end
  return left
end

local function reopen_item(p, item)
  -- the item has open work again: its keys live until it settles again
  for _, key in ipairs(item_keys(p, item)) do redis.call('PERSIST', key) end
end
"""
)

SETTLE_ITEM = (
    _ITEMS
    + """
-- ARGV: prefix, item, keep ms. After a write of several steps to an item (a resolved label and
-- its scored votes): the item's keys expire as settle_item says.
return settle_item(ARGV[1], ARGV[2], ARGV[3])
"""
)

RESOLVED_IF_NEWER = """
-- ARGV: prefix, item, revision, ResolvedLabel JSON. Keeps an item's latest label only while the
-- item has a task in Redis (an auto-accepted item costs nothing), never older over newer (equal
-- revisions: the later record), and only as long as the item's other keys. 1 if stored.
local p = ARGV[1]
local left = redis.call('PTTL', p .. 'itasks:' .. ARGV[2])
if left == -2 then return 0 end
local key = p .. 'resolved:' .. ARGV[2]
local current = redis.call('GET', key)
if current and cjson.decode(current)['revision'] > tonumber(ARGV[3]) then return 0 end
redis.call('SET', key, ARGV[4])
if left > 0 then redis.call('PEXPIRE', key, left) end
return 1
"""

ADD_AUDIT = """
-- ARGV: prefix, item, AuditEvent JSON, score, '1' for a comment, keep ms. Indexes an event in the
-- item's history (and comments): as long as the item's other keys, or for keep ms when Redis
-- holds no task of the item (an event read before its task, or after the item's window).
local p, item = ARGV[1], ARGV[2]
local keys = {p .. 'hist:' .. item}
if ARGV[5] == '1' then keys[2] = p .. 'comments:' .. item end
local left = redis.call('PTTL', p .. 'itasks:' .. item)
if left == -2 then left = tonumber(ARGV[6]) end
for _, key in ipairs(keys) do
  redis.call('ZADD', key, ARGV[4], ARGV[3])
  if left > 0 then redis.call('PEXPIRE', key, left) end
end
return left
"""

ENQUEUE = (
    _ITEMS
    + """
local p = ARGV[1]
local t = p .. 't:' .. ARGV[2]
local held = redis.call('HMGET', t, 'status', 'done', 'active', 'overlap', 'rank', 'score')
if held[1] then
  -- Known task: state already in Redis wins over the request. But an open task with a free
  -- slot belongs in its queue, and every task in its item's list: after a partial loss (the
  -- queue evicted, the task kept) the rebuild puts them back rather than leave it unclaimable.
  if held[1] == 'open' and tonumber(held[2]) + tonumber(held[3]) < tonumber(held[4]) then
    redis.call('ZADD', p .. 'q:' .. held[5], 'NX', held[6], ARGV[2])
  end
  redis.call('ZADD', p .. 'itasks:' .. ARGV[3], 'NX', ARGV[10], ARGV[2])
  return 0
end
redis.call('HSET', t, 'item', ARGV[3], 'project', ARGV[4], 'rank', ARGV[5], 'overlap', ARGV[6],
  'done', ARGV[12], 'active', 0, 'score', ARGV[7], 'skills', ARGV[8], 'req', ARGV[9],
  'created_ms', ARGV[10], 'status', ARGV[11], 'confidence', ARGV[13])
if ARGV[11] == 'open' and tonumber(ARGV[12]) < tonumber(ARGV[6]) then
  redis.call('ZADD', p .. 'q:' .. ARGV[5], ARGV[7], ARGV[2])
end
redis.call('ZADD', p .. 'itasks:' .. ARGV[3], ARGV[10], ARGV[2])
if ARGV[11] == 'open' or ARGV[11] == 'complete' then
  reopen_item(p, ARGV[3])
else
  settle_item(p, ARGV[3], ARGV[14])
end
return 1
"""
)

_LEASES = """
-- A lease is the value of <p>holders:<task> for its holder: 'lease_id|expiry ms|slot|epoch'.
-- slot is the task's overlap slot the lease fills and epoch its fencing token; both are absent
-- on leases granted before fencing (a decision under one carries no fence).
local function holder(v)
  local lease_id, expiry, slot, epoch = string.match(v, '^([^|]*)|([^|]*)|?([^|]*)|?([^|]*)$')
  return {lease_id = lease_id, expiry = tonumber(expiry), slot = slot, epoch = epoch}
end

local function holder_value(h, expiry)
  if h.slot == '' then return h.lease_id .. '|' .. expiry end
  return h.lease_id .. '|' .. expiry .. '|' .. h.slot .. '|' .. h.epoch
end

local function grant(p, id, user, lease_id, expiry)
  -- a new lease: the lowest overlap slot no holder of the task has, and a fencing token above
  -- every one issued before. The counter <p>epoch is floored by Redis's clock in microseconds,
  -- so that Redis coming back with an older state (a failover to a lagging replica, a restored
  -- snapshot: the counter went back too) still hands out tokens above the lost ones.
  local taken = {}
  for _, v in ipairs(redis.call('HVALS', p .. 'holders:' .. id)) do taken[holder(v).slot] = true end
  local slot = 1
  while taken[tostring(slot)] do slot = slot + 1 end
  local clock = redis.call('TIME')
  local epoch = math.max(tonumber(clock[1]) * 1000000 + tonumber(clock[2]),
    (tonumber(redis.call('GET', p .. 'epoch')) or 0) + 1)
  epoch = string.format('%.0f', epoch)
  redis.call('SET', p .. 'epoch', epoch)
  redis.call('HSET', p .. 'holders:' .. id, user,
    lease_id .. '|' .. expiry .. '|' .. slot .. '|' .. epoch)
  return tostring(slot), epoch
end
"""

_LEASE_CAP = (
    _LEASES
    + """
-- The per-person lease cap (review.max_leases_per_person): a person takes a task of project P
-- only while they hold fewer live leases, in every project, than P's cap (<p>lease-caps, kept
-- with the policy; default_cap for a project whose policy is unknown). <p>mine:<user> may
-- still list a lease that expired and awaits the sweep: only live ones count, and they are
-- counted (one HGET per listed lease) only when the set's size reaches a cap.
local function lease_cap(p, user, now, default_cap)
  local mine = p .. 'mine:' .. user
  local cap = {listed = redis.call('SCARD', mine)}
  local live, caps = nil, {}
  function cap.of(project)
    if not caps[project] then
      caps[project] = tonumber(redis.call('HGET', p .. 'lease-caps', project)) or default_cap
    end
    return caps[project]
  end
  function cap.held()
    if not live then
      live = 0
      for _, id in ipairs(redis.call('SMEMBERS', mine)) do
        local v = redis.call('HGET', p .. 'holders:' .. id, user)
        if v and holder(v).expiry >= now then
          live = live + 1
        end
      end
    end
    return live
  end
  function cap.under(limit)
    return cap.listed < limit or cap.held() < limit
  end
  -- the largest cap among the projects in scope (an empty scope: every project)
  function cap.largest(scope)
    local largest = 0
    if next(scope) == nil then
      largest = default_cap
      for _, v in ipairs(redis.call('HVALS', p .. 'lease-caps')) do
        largest = math.max(largest, tonumber(v))
      end
    end
    for project in pairs(scope) do largest = math.max(largest, cap.of(project)) end
    return largest
  end
  return cap
end
"""
)

CLAIM = (
    _LEASE_CAP
    + """
local p, user = ARGV[1], ARGV[2]
local max_rank, now, lease_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lease_id, limit = ARGV[6], tonumber(ARGV[8])
if redis.call('EXISTS', p .. 'ready') == 0 then return {'rebuilding'} end
local projects, any_project = {}, ARGV[7] == ''
for name in string.gmatch(ARGV[7], '[^,]+') do projects[name] = true end
local skills = {}
for i = 10, #ARGV do skills[ARGV[i]] = true end
local cap, capped = lease_cap(p, user, now, tonumber(ARGV[9])), nil
if cap.listed > 0 then
  -- at the cap of every project in scope: refused without looking at the queues
  local largest = cap.largest(projects)
  if not cap.under(largest) then return {'lease_limit', largest, cap.held()} end
end
local scanned = 0
for rank = max_rank, 0, -1 do
  local q = p .. 'q:' .. rank
  local offset, stale, found = 0, {}, nil
  while scanned < limit and not found do
    local ids = redis.call('ZRANGE', q, offset, offset + 99)
    if #ids == 0 then break end
    offset = offset + #ids
    for _, id in ipairs(ids) do
      scanned = scanned + 1
      local f = redis.call('HMGET', p .. 't:' .. id,
        'item', 'project', 'overlap', 'done', 'active', 'skills', 'status')
      if f[7] ~= 'open' or tonumber(f[4]) + tonumber(f[5]) >= tonumber(f[3]) then
        stale[#stale + 1] = id
      elseif (any_project or projects[f[2]])
          and redis.call('SISMEMBER', p .. 'voters:' .. f[1], user) == 0
          and redis.call('SISMEMBER', p .. 'skip:' .. id, user) == 0
          and redis.call('HEXISTS', p .. 'holders:' .. id, user) == 0 then
        local ok = true
        if f[6] ~= '[]' then
          for _, s in ipairs(cjson.decode(f[6])) do
            if not skills[s] then ok = false break end
          end
        end
        if ok and not cap.under(cap.of(f[2])) then
          ok, capped = false, math.min(capped or cap.of(f[2]), cap.of(f[2]))
        end
        if ok then found = {id, f} break end
      end
      if scanned >= limit then break end
    end
  end
  for _, id in ipairs(stale) do redis.call('ZREM', q, id) end
  if found then
    local id, f = found[1], found[2]
    local t = p .. 't:' .. id
    local active = redis.call('HINCRBY', t, 'active', 1)
    local expiry = now + lease_ms
    local slot, epoch = grant(p, id, user, lease_id, expiry)
    redis.call('ZADD', p .. 'leases', expiry, id .. '\\31' .. user)
    redis.call('SADD', p .. 'mine:' .. user, id)
    if tonumber(f[4]) + active >= tonumber(f[3]) then redis.call('ZREM', q, id) end
    local stored = redis.call('HMGET', t, 'req', 'confidence')
    return {'ok', id, lease_id, tostring(expiry), stored[1], stored[2], slot, epoch}
  end
end
if capped then return {'lease_limit', capped, cap.held()} end
if scanned >= limit then return {'none', 'scan_limit'} end
return {'none'}
"""
)

_DROP_LEASE = """
local function drop_lease(p, id, user)
  if redis.call('HDEL', p .. 'holders:' .. id, user) == 0 then return false end
  redis.call('ZREM', p .. 'leases', id .. '\\31' .. user)
  redis.call('SREM', p .. 'mine:' .. user, id)
  local t = p .. 't:' .. id
  if redis.call('EXISTS', t) == 0 then return true end  -- the settled item's window ended
  local active = redis.call('HINCRBY', t, 'active', -1)
  local f = redis.call('HMGET', t, 'overlap', 'done', 'status', 'rank', 'score')
  if f[3] == 'open' and tonumber(f[2]) + active < tonumber(f[1]) then
    redis.call('ZADD', p .. 'q:' .. f[4], f[5], id)
  end
  return true
end
"""

SWEEP = (
    _DROP_LEASE
    + """
local p, now, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', now, 'LIMIT', 0, max)
local out = {#due}
for _, m in ipairs(due) do
  local sep = string.find(m, '\\31', 1, true)
  local id, user = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
  redis.call('ZREM', p .. 'leases', m)
  if drop_lease(p, id, user) then
    local f = redis.call('HMGET', p .. 't:' .. id, 'item', 'project')
    out[#out + 1] = id
    out[#out + 1] = user
    out[#out + 1] = f[1] or ''
    out[#out + 1] = f[2] or ''
  end
end
return out
"""
)

RELEASE = (
    _DROP_LEASE
    + """
if drop_lease(ARGV[1], ARGV[2], ARGV[3]) then return 1 end
return 0
"""
)

HEARTBEAT = (
    _LEASES
    + """
local p, id, user = ARGV[1], ARGV[2], ARGV[3]
local now, lease_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HGET', p .. 'holders:' .. id, user)
if not v then return {'not_holder'} end
local h = holder(v)
if h.expiry < now then return {'not_holder'} end
local expiry = now + lease_ms
redis.call('HSET', p .. 'holders:' .. id, user, holder_value(h, expiry))
redis.call('ZADD', p .. 'leases', expiry, id .. '\\31' .. user)
return {'ok', h.lease_id, tostring(expiry)}
"""
)

DECIDE_BEGIN = (
    _LEASES
    + """
-- One decision in flight per (task, person): a second one with another idempotency key (a
-- second tab, a retry with a fresh key) is refused until the first committed or its grace ran
-- out, so a person never publishes two votes for one lease.
local p, id, user, idem = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, grace = tonumber(ARGV[5]), tonumber(ARGV[6])
local r = redis.call('GET', idem)
if r then return {'replay', r} end
local v = redis.call('HGET', p .. 'holders:' .. id, user)
if not v then return {'not_holder'} end
local h = holder(v)
if h.expiry < now then return {'not_holder'} end
local deciding = p .. 'deciding:' .. id .. '\\31' .. user
local pending = redis.call('GET', deciding)
if pending and pending ~= idem then return {'in_progress'} end
redis.call('SET', deciding, idem, 'PX', grace)
if h.expiry < now + grace then
  redis.call('HSET', p .. 'holders:' .. id, user, holder_value(h, now + grace))
  redis.call('ZADD', p .. 'leases', now + grace, id .. '\\31' .. user)
end
return {'ok', redis.call('HGET', p .. 't:' .. id, 'req'), h.slot, h.epoch}
"""
)

DECIDE_ABANDON = """
-- A decision refused before it was published (422, 413) no longer holds the person's slot.
local deciding = ARGV[1] .. 'deciding:' .. ARGV[2] .. '\\31' .. ARGV[3]
if redis.call('GET', deciding) == ARGV[4] then redis.call('DEL', deciding) end
return 0
"""

DECIDE_COMMIT = (
    _ITEMS
    + """
local p, id, user, idem = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local result, ttl, kind = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local decision_id, vote, seconds, keep_ms = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local r = redis.call('GET', idem)
if r then return {'replay', r} end
local deciding = p .. 'deciding:' .. id .. '\\31' .. user
if redis.call('GET', deciding) == idem then redis.call('DEL', deciding) end
local t = p .. 't:' .. id
if redis.call('HDEL', p .. 'holders:' .. id, user) == 1 then
  redis.call('ZREM', p .. 'leases', id .. '\\31' .. user)
  redis.call('SREM', p .. 'mine:' .. user, id)
  if redis.call('EXISTS', t) == 1 then redis.call('HINCRBY', t, 'active', -1) end
end
local f = redis.call('HMGET', t, 'overlap', 'done', 'active', 'status', 'rank', 'score', 'item')
if not f[1] then
  -- the working set was lost after Kafka acknowledged: the rebuild counts this decision
  local res = cjson.decode(result)
  res['task_votes'] = 0
  res['task_complete'] = false
  local encoded = cjson.encode(res)
  redis.call('SET', idem, encoded, 'EX', ttl)
  return {'ok', encoded}
end
local overlap, done, active = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
local qual = p .. 'quality:' .. user
if kind == 'skip' then
  redis.call('SADD', p .. 'skip:' .. id, user)
  redis.call('HINCRBY', qual, 'skips', 1)
  redis.call('SADD', p .. 'qusers', user)
elseif redis.call('SADD', p .. 'voters:' .. f[7], user) == 1 then
  -- a person's first vote on the item fills a slot; a later one (acknowledged after its grace,
  -- once the person had claimed again) is in Kafka but counts nothing more here
  done = redis.call('HINCRBY', t, 'done', 1)
  redis.call('HSET', p .. 'votes:' .. f[7], decision_id, vote)
  redis.call('HINCRBY', qual, 'votes', 1)
  redis.call('SADD', p .. 'qusers', user)
  redis.call('HINCRBYFLOAT', qual, 'seconds', seconds)
  if kind == 'escalate' then redis.call('HINCRBY', qual, 'escalations', 1) end
end
local q = p .. 'q:' .. f[5]
if done >= overlap then
  if f[4] == 'open' then redis.call('HSET', t, 'status', 'complete') end
  redis.call('ZREM', q, id)
elseif f[4] == 'open' and done + active < overlap then
  redis.call('ZADD', q, f[6], id)
end
if f[4] ~= 'open' and f[4] ~= 'complete' then
  -- a vote on a settled task (its item closed while it was decided): it expires with the item
  settle_item(p, f[7], keep_ms)
end
local res = cjson.decode(result)
res['task_votes'] = done
res['task_complete'] = done >= overlap
local encoded = cjson.encode(res)
redis.call('SET', idem, encoded, 'EX', ttl)
return {'ok', encoded}
"""
)

CLOSE = (
    _ITEMS
    + """
local p, id, status, revoke, keep_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = p .. 't:' .. id
local f = redis.call('HMGET', t, 'status', 'rank', 'item')
if not f[1] then return {} end
if f[1] == 'open' or f[1] == 'complete' then redis.call('HSET', t, 'status', status) end
redis.call('ZREM', p .. 'q:' .. f[2], id)
local revoked = {}
if revoke == '1' then
  for _, user in ipairs(redis.call('HKEYS', p .. 'holders:' .. id)) do
    redis.call('ZREM', p .. 'leases', id .. '\\31' .. user)
    redis.call('SREM', p .. 'mine:' .. user, id)
    revoked[#revoked + 1] = user
  end
  redis.call('DEL', p .. 'holders:' .. id)
  redis.call('HSET', t, 'active', 0)
end
settle_item(p, f[3], keep_ms)
return revoked
"""
)

REASSIGN = (
    _LEASES
    + _DROP_LEASE
    + """
local p, id, from_user, new_rank, to_user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, lease_ms, lease_id = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local t = p .. 't:' .. id
local f = redis.call('HMGET', t, 'status', 'rank', 'score', 'item', 'overlap', 'done')
if not f[1] then return {'not_found'} end
if f[1] ~= 'open' then return {'closed'} end
local revoked = {}
local holders = redis.call('HKEYS', p .. 'holders:' .. id)
for _, user in ipairs(holders) do
  if from_user == '' or from_user == user then
    drop_lease(p, id, user)
    revoked[#revoked + 1] = user
  end
end
local rank = f[2]
if new_rank ~= '' and new_rank ~= rank then
  redis.call('ZREM', p .. 'q:' .. rank, id)
  redis.call('HSET', t, 'rank', new_rank)
  rank = new_rank
  local active = tonumber(redis.call('HGET', t, 'active'))
  if tonumber(f[6]) + active < tonumber(f[5]) then
    redis.call('ZADD', p .. 'q:' .. rank, f[3], id)
  end
end
local expiry = ''
if to_user ~= '' then
  local active = tonumber(redis.call('HGET', t, 'active'))
  if tonumber(f[6]) + active >= tonumber(f[5])
      or redis.call('SISMEMBER', p .. 'voters:' .. f[4], to_user) == 1
      or redis.call('HEXISTS', p .. 'holders:' .. id, to_user) == 1 then
    return {'not_eligible', cjson.encode(revoked)}
  end
  active = redis.call('HINCRBY', t, 'active', 1)
  expiry = tostring(now + lease_ms)
  grant(p, id, to_user, lease_id, expiry)
  redis.call('ZADD', p .. 'leases', expiry, id .. '\\31' .. to_user)
  redis.call('SADD', p .. 'mine:' .. to_user, id)
  redis.call('SREM', p .. 'skip:' .. id, to_user)
  if tonumber(f[6]) + active >= tonumber(f[5]) then redis.call('ZREM', p .. 'q:' .. rank, id) end
end
return {'ok', cjson.encode(revoked), expiry}
"""
)

SET_POLICY_IF_NEWER = """
-- ARGV: prefix, project, version, PolicyUpdate JSON. Keeps the newest version per project
-- (the HTTP side and the consumer both write it), and its review.media_origins in the one hash
-- the CSP is built from; returns 1 if stored, 0 if a newer one is there.
local key = ARGV[1] .. 'policy:' .. ARGV[2]
local current = redis.call('GET', key)
if current and cjson.decode(current)['version'] > tonumber(ARGV[3]) then return 0 end
redis.call('SET', key, ARGV[4])
local review = cjson.decode(ARGV[4])['policy']['review']
local origins = type(review) == 'table' and review['media_origins'] or nil
if type(origins) == 'table' and #origins > 0 then
  redis.call('HSET', ARGV[1] .. 'media-origins', ARGV[2], table.concat(origins, ' '))
else
  redis.call('HDEL', ARGV[1] .. 'media-origins', ARGV[2])
end
-- and its review.max_leases_per_person where CLAIM reads it (absent: CLAIM's default)
local cap = type(review) == 'table' and review['max_leases_per_person'] or nil
if type(cap) == 'number' then
  redis.call('HSET', ARGV[1] .. 'lease-caps', ARGV[2], cap)
else
  redis.call('HDEL', ARGV[1] .. 'lease-caps', ARGV[2])
end
return 1
"""

SET_USER_IF_NEWER = """
-- ARGV: prefix, user id, version, User JSON, '1' to replace a record of the same version too.
-- Keeps the newest version of a user's record (every change counts it up), so that a load of
-- the users file never brings back an older record than a change already in Redis (one whose
-- file write failed, or that landed after the load read the file). The HTTP side writes only a
-- strictly newer version (two changes from one version: the second reads again); a load also
-- rewrites the same version. Returns 1 if stored, 0 if not.
local key = ARGV[1] .. 'user:' .. ARGV[2]
local current = redis.call('GET', key)
if current then
  local stored = cjson.decode(current)['version'] or 0
  local version = tonumber(ARGV[3])
  if stored > version or (stored == version and ARGV[5] ~= '1') then return 0 end
end
redis.call('SET', key, ARGV[4])
redis.call('SADD', ARGV[1] .. 'users', ARGV[2])
return 1
"""

RELEASE_LOCK = """
-- ARGV: lock key, token. Deletes the lock only if this holder still owns it.
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0
"""

COUNT_QUEUED = """
-- ARGV: prefix, max rank, limit, projects... Per tier up to max rank, the queued tasks of the
-- given projects among the first `limit` of its queue; then 1 when every queue was read whole.
local p, max_rank, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local projects = {}
for i = 4, #ARGV do projects[ARGV[i]] = true end
local counts, complete = {}, 1
for rank = 0, max_rank do
  local q = p .. 'q:' .. rank
  local ids = redis.call('ZRANGE', q, 0, limit - 1)
  if #ids == limit and redis.call('ZCARD', q) > limit then complete = 0 end
  local n = 0
  for _, id in ipairs(ids) do
    local project = redis.call('HGET', p .. 't:' .. id, 'project')
    if project and projects[project] then n = n + 1 end
  end
  counts[#counts + 1] = n
end
counts[#counts + 1] = complete
return counts
"""
