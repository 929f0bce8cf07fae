"""Redis Lua scripts: every queue and lease transition is one atomic script.

Keys are built inside the scripts from a prefix (``ARGV[1]``), so the gateway needs a single
Redis (or a cluster with one hash slot per deployment); see the service README.

Task hash ``<p>t:<task_id>`` fields: ``req`` (the ReviewRequest JSON less its embedding:
``projector.without_embedding``), ``item``, ``project``,
``rank`` (tier rank), ``overlap``, ``done`` (votes counted), ``active`` (live leases), ``score``
(queue score), ``skills`` (JSON list), ``status`` (open | complete | resolved | closed),
``created_ms``, ``confidence`` (the model's, '' when unknown; absent on tasks stored before it
existed). An open task with a free slot is in exactly one queue (``PLACE``): its tier's,
project's and required-skill set's, fresh or touched (``loupe.runtime.gateway_queues``); a claim
picks queues by project and skills and reads a bounded number of entries (``CLAIM``). A task's
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

import re

from loupe.runtime.gateway_queues import QUEUE, QUEUE_INDEX, QUEUE_PROJECTS

DEFAULT_SETTLED_RETENTION_S = 7 * 86_400
"""Seven days: the window in which people can still read a settled item from the gateway."""

ITEM_KEYS = ("itasks", "voters", "votes", "scored", "resolved", "hist", "comments")
"""Keys ``<p><name>:<item id>`` the gateway keeps for an item."""

TASK_KEYS = ("t", "skip", "holders")
"""Keys ``<p><name>:<task id>`` the gateway keeps for each task of an item."""

SKIP_MEMORY = 100
"""A person's skips are remembered for their this many most recent skipped tasks (``SKIPS``):
an older skipped task may be offered to them again. Bounds what a claim passes over."""

VOTE_LOOK = 32
"""In one queue a claim passes over, beyond the person's leases and remembered skips, at most
this many tasks the person voted on that still wait for another reviewer (``CLAIM``)."""


def _lua_key(template: str) -> str:
    """A Lua expression of the key ``p .. template``, its ``{names}`` being Lua variables."""
    parts = re.split(r"\{(\w+)\}", template)
    pieces = [part if i % 2 else f"'{part}'" for i, part in enumerate(parts) if part]
    return " .. ".join(["p", *pieces])


PLACE = (
    f"""
local function queue_key(p, rank, project, queue) return {_lua_key(QUEUE)} end
local function index_key(p, rank, project) return {_lua_key(QUEUE_INDEX)} end
local function projects_key(p, rank) return {_lua_key(QUEUE_PROJECTS)} end
"""
    + """
local function forget_if_empty(p, rank, project, queue)
  -- an emptied queue leaves its project's index, an emptied index the rank's projects
  if redis.call('EXISTS', queue_key(p, rank, project, queue)) == 1 then return end
  local index = index_key(p, rank, project)
  redis.call('SREM', index, queue)
  if redis.call('EXISTS', index) == 0 then redis.call('SREM', projects_key(p, rank), project) end
end

local function place(p, id, away)
  -- puts a task in the one queue it belongs in: none unless it is open with a free slot (or
  -- when `away`: its rank is about to change), else its rank's, project's and skill set's,
  -- 'f' (fresh: nobody holds it, voted on its item or skipped it) or 't' (touched)
  local f = redis.call('HMGET', p .. 't:' .. id,
    'status', 'done', 'active', 'overlap', 'rank', 'project', 'skills', 'score', 'item')
  if not f[1] then return end
  local kind = nil
  if not away and f[1] == 'open' and tonumber(f[2]) + tonumber(f[3]) < tonumber(f[4]) then
    kind = 't'
    if tonumber(f[3]) == 0 and redis.call('EXISTS', p .. 'voters:' .. f[9]) == 0
        and redis.call('EXISTS', p .. 'skip:' .. id) == 0 then
      kind = 'f'
    end
  end
  for _, k in ipairs({'f', 't'}) do
    local queue = k .. f[7]
    if k == kind then
      redis.call('ZADD', queue_key(p, f[5], f[6], queue), f[8], id)
      redis.call('SADD', index_key(p, f[5], f[6]), queue)
      redis.call('SADD', projects_key(p, f[5]), f[6])
    elseif redis.call('ZREM', queue_key(p, f[5], f[6], queue), id) == 1 then
      forget_if_empty(p, f[5], f[6], queue)
    end
  end
end

local function place_item(p, item)
  -- after a vote on the item: its queued tasks are no longer fresh
  for _, id in ipairs(redis.call('ZRANGE', p .. 'itasks:' .. item, 0, -1)) do place(p, id) end
end
"""
)
"""Lua: where a task is queued, one function every transition calls after changing a task."""

SKIPS = (
    PLACE
    + f"local SKIP_MEMORY = {SKIP_MEMORY}\n"
    + """
local function remember_skip(p, id, user)
  -- the person's SKIP_MEMORY most recent skips are kept (<p>skips:<user>, by time); the task of
  -- the oldest one beyond is offered to them again
  redis.call('SADD', p .. 'skip:' .. id, user)
  local mine = p .. 'skips:' .. user
  local now = redis.call('TIME')
  redis.call('ZADD', mine, tonumber(now[1]) * 1000000 + tonumber(now[2]), id)
  local over = redis.call('ZCARD', mine) - SKIP_MEMORY
  if over > 0 then
    local oldest = redis.call('ZPOPMIN', mine, over)
    for i = 1, #oldest, 2 do
      redis.call('SREM', p .. 'skip:' .. oldest[i], user)
      place(p, oldest[i])
    end
  end
end
"""
)
"""Lua: a person's skip, remembered within ``SKIP_MEMORY``."""

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
    + PLACE
    + """
local p = ARGV[1]
local t = p .. 't:' .. ARGV[2]
if redis.call('EXISTS', t) == 1 then
  -- Known task: state already in Redis wins over the request, but not over the one fact the
  -- history proves whatever happened since (Redis came back older: a restored snapshot, a
  -- failover to a lagging replica): a task Kafka shows settled is settled (tasks never reopen).
  -- Its vote count is not raised from the history: a vote made under a lease the older Redis
  -- revived would then fill the task in the gateway while the resolver, which drops it by its
  -- fence, waits for one more. And an open task with a free slot belongs in its queue, and
  -- every task in its item's list: after a partial loss (the queue evicted, the task kept) the
  -- rebuild puts them back rather than leave it unclaimable.
  local held = redis.call('HGET', t, 'status')
  local settled = (ARGV[11] == 'resolved' or ARGV[11] == 'closed')
    and (held == 'open' or held == 'complete')
  if settled then redis.call('HSET', t, 'status', ARGV[11]) end
  place(p, ARGV[2])
  redis.call('ZADD', p .. 'itasks:' .. ARGV[3], 'NX', ARGV[10], ARGV[2])
  if settled then settle_item(p, ARGV[3], ARGV[14]) end
  return 0
end
redis.call('HSET', t, 'item', ARGV[3], 'project', ARGV[4], 'rank', ARGV[5], 'overlap', ARGV[6],
  'done', ARGV[12], 'active', 0, 'score', ARGV[7], 'skills', ARGV[8], 'req', ARGV[9],
  'created_ms', ARGV[10], 'status', ARGV[11], 'confidence', ARGV[13])
redis.call('ZADD', p .. 'itasks:' .. ARGV[3], ARGV[10], ARGV[2])
place(p, ARGV[2])
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
    + PLACE
    + f"local VOTE_LOOK = {VOTE_LOOK}\n"
    + """
local p, user = ARGV[1], ARGV[2]
local max_rank, now, lease_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lease_id = ARGV[6]
if redis.call('EXISTS', p .. 'ready') == 0 then return {'rebuilding'} end
local projects, any_project = {}, ARGV[7] == ''
for name in string.gmatch(ARGV[7], '[^,]+') do projects[name] = true end
local skills = {}
for i = 9, #ARGV do skills[ARGV[i]] = true end
local cap, capped = lease_cap(p, user, now, tonumber(ARGV[8])), nil
if cap.listed > 0 then
  -- at the cap of every project in scope: refused without looking at the queues
  local largest = cap.largest(projects)
  if not cap.under(largest) then return {'lease_limit', largest, cap.held()} end
end
-- Project scope and skills choose the queues; inside one, the person reads past their own
-- exclusions only: tasks they hold, skipped (remembered ones) or voted on. So a claim reads at
-- most `look` entries of each queue it may take from (docs/architecture.md, "Claims").
local look = 1 + cap.listed + redis.call('ZCARD', p .. 'skips:' .. user) + VOTE_LOOK
local function fits(queue)
  local required = string.sub(queue, 2)
  if required == '[]' then return true end
  for _, s in ipairs(cjson.decode(required)) do
    if not skills[s] then return false end
  end
  return true
end
local function first_eligible(rank, project, queue, below)
  -- the first task of a queue this person may take, scored below `below`; stale entries are
  -- put where they belong
  local q = queue_key(p, rank, project, queue)
  local read, stale, hit = 0, {}, nil
  while read < look and not hit do
    local batch = redis.call('ZRANGE', q, read, read + math.min(look - read, 8) - 1, 'WITHSCORES')
    if #batch == 0 then break end
    read = read + #batch / 2
    for i = 1, #batch, 2 do
      local id, score = batch[i], tonumber(batch[i + 1])
      if below and score >= below then read = look break end
      local f = redis.call('HMGET', p .. 't:' .. id,
        'item', 'project', 'overlap', 'done', 'active', 'skills', 'status')
      if f[7] ~= 'open' or tonumber(f[4]) + tonumber(f[5]) >= tonumber(f[3]) then
        stale[#stale + 1] = id
      elseif redis.call('SISMEMBER', p .. 'voters:' .. f[1], user) == 0
          and redis.call('SISMEMBER', p .. 'skip:' .. id, user) == 0
          and redis.call('HEXISTS', p .. 'holders:' .. id, user) == 0 then
        hit = {id, f, score}
        break
      end
    end
  end
  for _, id in ipairs(stale) do
    redis.call('ZREM', q, id)
    place(p, id)
  end
  if #stale > 0 then forget_if_empty(p, rank, project, queue) end
  return hit
end
for rank = max_rank, 0, -1 do
  local names = {}
  if any_project then
    names = redis.call('SMEMBERS', projects_key(p, rank))
  else
    for name in pairs(projects) do names[#names + 1] = name end
  end
  local found = nil
  for _, project in ipairs(names) do
    local at_cap = cap.listed > 0 and not cap.under(cap.of(project))
    for _, queue in ipairs(redis.call('SMEMBERS', index_key(p, rank, project))) do
      if fits(queue) then
        if at_cap then
          -- a task the person could take but for the project's cap: 409, unless another fits
          if first_eligible(rank, project, queue, nil) then
            capped = math.min(capped or cap.of(project), cap.of(project))
            break
          end
        else
          local hit = first_eligible(rank, project, queue, found and found[3])
          if hit then found = hit end
        end
      end
    end
  end
  if found then
    local id, f = found[1], found[2]
    local t = p .. 't:' .. id
    local active = redis.call('HINCRBY', t, 'active', 1)
    local expiry = now + lease_ms
    local slot, epoch = grant(p, id, user, lease_id, expiry)
    redis.call('ZADD', p .. 'leases', expiry, id .. '\\31' .. user)
    redis.call('SADD', p .. 'mine:' .. user, id)
    place(p, id)
    local stored = redis.call('HMGET', t, 'req', 'confidence')
    return {'ok', id, lease_id, tostring(expiry), stored[1], stored[2], slot, epoch}
  end
end
if capped then return {'lease_limit', capped, cap.held()} end
return {'none'}
"""
)

_DROP_LEASE = (
    PLACE
    + """
local function drop_lease(p, id, user)
  if redis.call('HDEL', p .. 'holders:' .. id, user) == 0 then return false end
  redis.call('ZREM', p .. 'leases', id .. '\\31' .. user)
  redis.call('SREM', p .. 'mine:' .. user, id)
  local t = p .. 't:' .. id
  if redis.call('EXISTS', t) == 0 then return true end  -- the settled item's window ended
  redis.call('HINCRBY', t, 'active', -1)
  place(p, id)
  return true
end
"""
)

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
-- 1 released, 0 no such lease, 2 refused: a decision of the holder's on it is being published
-- (freed now, its slot could go to someone else, whose decision, with a higher fence, might
-- reach Kafka first and make the holder's look stale once it lands)
if redis.call('EXISTS', ARGV[1] .. 'deciding:' .. ARGV[2] .. '\\31' .. ARGV[3]) == 1 then
  return 2
end
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
    + SKIPS
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
local f = redis.call('HMGET', t, 'overlap', 'done', 'active', 'status', 'item')
if not f[1] then
  -- the working set was lost after Kafka acknowledged: the rebuild counts this decision
  local res = cjson.decode(result)
  res['task_votes'] = 0
  res['task_complete'] = false
  local encoded = cjson.encode(res)
  redis.call('SET', idem, encoded, 'EX', ttl)
  return {'ok', encoded}
end
local overlap, done = tonumber(f[1]), tonumber(f[2])
local qual = p .. 'quality:' .. user
if kind == 'skip' then
  remember_skip(p, id, user)
  redis.call('HINCRBY', qual, 'skips', 1)
  redis.call('SADD', p .. 'qusers', user)
elseif redis.call('SADD', p .. 'voters:' .. f[5], user) == 1 then
  -- a person's first vote on the item fills a slot; a later one (acknowledged after its grace,
  -- once the person had claimed again) is in Kafka but counts nothing more here
  done = redis.call('HINCRBY', t, 'done', 1)
  redis.call('HSET', p .. 'votes:' .. f[5], decision_id, vote)
  redis.call('HINCRBY', qual, 'votes', 1)
  redis.call('SADD', p .. 'qusers', user)
  redis.call('HINCRBYFLOAT', qual, 'seconds', seconds)
  if kind == 'escalate' then redis.call('HINCRBY', qual, 'escalations', 1) end
end
if done >= overlap and f[4] == 'open' then redis.call('HSET', t, 'status', 'complete') end
place_item(p, f[5])
if f[4] ~= 'open' and f[4] ~= 'complete' then
  -- a vote on a settled task (its item closed while it was decided): it expires with the item
  settle_item(p, f[5], keep_ms)
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
    + PLACE
    + """
local p, id, status, revoke, keep_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = p .. 't:' .. id
local f = redis.call('HMGET', t, 'status', 'item')
if not f[1] then return {} end
if f[1] == 'open' or f[1] == 'complete' then redis.call('HSET', t, 'status', status) end
place(p, id)
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
settle_item(p, f[2], keep_ms)
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
  place(p, id, true)
  redis.call('HSET', t, 'rank', new_rank)
  place(p, id)
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
  place(p, id)
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

ITEMS_WITH_TASKS = """
-- ARGV: prefix, item ids... Per item, 1 if Redis holds a task of it, else 0: one round trip tells
-- which of a batch of resolved labels concern the gateway (most are auto-accepted, none do).
local p, found = ARGV[1], {}
for i = 2, #ARGV do found[i - 1] = redis.call('EXISTS', p .. 'itasks:' .. ARGV[i]) end
return found
"""

RELEASE_LOCK = """
-- ARGV: lock key, token. Deletes the lock only if this holder still owns it.
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0
"""

COUNT_QUEUED = (
    PLACE
    + """
-- ARGV: prefix, max rank, projects... (none: every project). Per tier up to max rank, the
-- queued tasks of those projects: one ZCARD per non-empty queue, never a read of entries.
local p, max_rank = ARGV[1], tonumber(ARGV[2])
local counts = {}
for rank = 0, max_rank do
  local names = {}
  for i = 3, #ARGV do names[#names + 1] = ARGV[i] end
  if #ARGV < 3 then names = redis.call('SMEMBERS', projects_key(p, rank)) end
  local n = 0
  for _, project in ipairs(names) do
    for _, queue in ipairs(redis.call('SMEMBERS', index_key(p, rank, project))) do
      n = n + redis.call('ZCARD', queue_key(p, rank, project, queue))
    end
  end
  counts[#counts + 1] = n
end
return counts
"""
)
