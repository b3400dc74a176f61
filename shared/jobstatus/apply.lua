-- Applies job-status transitions in order (JobStatusStore.apply); sent after rollup.lua
-- and search.lua.
-- ARGV: namespace, max events, transitions (JSON), max tree depth, min age (ms),
-- cap per queue and state (-1: none), dead-letter suffix of a queue, bodies suffix.
local ns = ARGV[1]
local max_events = tonumber(ARGV[2])
local transitions = cjson.decode(ARGV[3])
local max_depth = tonumber(ARGV[4])
-- Records younger than this (ms in their state) are never pruned by the counts.
local min_age = tonumber(ARGV[5]) or 0
-- Terminal records of one state kept per queue at most, whatever their age (-1: no cap).
local cap = tonumber(ARGV[6]) or -1
-- Dramatiq's dead-letter set of a queue is ns:<queue><dead_suffix>, its bodies the set's
-- key plus bodies_suffix (shared.dramatiq_redis names both).
local dead_suffix = ARGV[7]
local bodies_suffix = ARGV[8]
-- Records pruned per transition at most (a backlog of old ones goes over a few writes).
local MAX_PRUNE = 200
local function index(q, s) return ns .. ":jobs:" .. q .. ":" .. s end
local function tindex(t, q, s) return ns .. ":jobs:t:" .. t .. ":" .. q .. ":" .. s end
local applied_count = 0
-- Tree states that keep a succeeded root past the succeeded retention (see HELD_TREES).
local HELD_TREES = {failed = true, retrying = true, waiting = true, running = true,
                    queued = true}

-- Delete a record pruned by retention from the ``state`` index of ``queue`` (every
-- tenant's and its own tenant's; for succeeded, the held sets too), its tree and
-- search indexes, and its parent's sets.
local function drop(vid, queue, state)
  local vkey = ns .. ":job:" .. vid
  local v = redis.call("hmget", vkey, "tenant", "parent", "broker_id", "tree_state")
  local vt = v[1] or ""
  redis.call("zrem", index(queue, state), vid)
  redis.call("zrem", tindex(vt, queue, state), vid)
  if state == "succeeded" then
    redis.call("zrem", index(queue, "held"), vid)
    redis.call("zrem", tindex(vt, queue, "held"), vid)
  end
  unindex(ns, vid)
  if v[4] and (not v[2] or v[2] == "") then
    redis.call("zrem", index(queue, "tree." .. v[4]), vid)
    if v[1] and v[1] ~= "" then
      redis.call("zrem", tindex(v[1], queue, "tree." .. v[4]), vid)
    end
  elseif v[2] and v[2] ~= "" and state == "succeeded"
      and not (v[4] == "failed" or v[4] == "cancelled") then
    -- A success adds nothing to its parent's tree; a pruned failure (its own, or one
    -- below it) and a cancelled end still count there.
    redis.call("zrem", ns .. ":job:" .. v[2] .. ":tree", vid)
  end
  if v[2] and v[2] ~= "" then
    redis.call("zrem", ns .. ":job:" .. v[2] .. ":children", vid)
  end
  if state == "failed" and v[3] and v[3] ~= "" then
    -- The dead-letter set keeps what the failed records keep (Bull's removeOnFail).
    local dead = ns .. ":" .. queue .. dead_suffix
    redis.call("zrem", dead, v[3])
    redis.call("hdel", dead .. bodies_suffix, v[3])
  end
  redis.call("del", vkey, vkey .. ":events", vkey .. ":children", vkey .. ":tree")
end

for _, t in ipairs(transitions) do
  local id, queue, tenant, state = t.id, t.q, t.t, t.s
  local job = ns .. ":job:" .. id
  local old = redis.call("hmget", job, "state", "tenant", "queue", "rank", "parent", "actor")
  local exists = old[1] ~= false
  if old[2] and old[2] ~= "" then
    -- A job's tenant never changes once recorded: it decides who may see the job.
    tenant = old[2]
  end
  if t.x ~= 1 or exists then
  local applied = state == "" or not exists or t.r >= (tonumber(old[4]) or -1)

  local flat = {}
  if applied then
    for name, value in pairs(t.f) do
      flat[#flat + 1] = name
      flat[#flat + 1] = value
    end
  else
    for name, value in pairs(t.f) do
      redis.call("hsetnx", job, name, value)
    end
  end
  if not exists then
    for name, value in pairs(t.n) do
      flat[#flat + 1] = name
      flat[#flat + 1] = value
    end
  end
  if state ~= "" and applied then
    local old_queue = old[3] or queue
    if exists and (old[1] ~= state or old_queue ~= queue) then
      redis.call("zrem", index(old_queue, old[1]), id)
      redis.call("zrem", tindex(old[2] or "", old_queue, old[1]), id)
    end
    redis.call("zadd", index(queue, state), t.at, id)
    -- Per-tenant indexes (records without a tenant: the tenant ""), which retention counts.
    redis.call("zadd", tindex(tenant, queue, state), t.at, id)
    if tenant ~= "" then
      flat[#flat + 1] = "tenant"
      flat[#flat + 1] = tenant
    end
    flat[#flat + 1] = "state"
    flat[#flat + 1] = state
    flat[#flat + 1] = "queue"
    flat[#flat + 1] = queue
    flat[#flat + 1] = "rank"
    flat[#flat + 1] = t.r
    flat[#flat + 1] = "updated_at"
    flat[#flat + 1] = t.at
  end
  if t.p ~= "" and (not exists or not applied) then
    redis.call("hsetnx", job, "parent", t.p)
  elseif t.p ~= "" then
    flat[#flat + 1] = "parent"
    flat[#flat + 1] = t.p
  end
  if #flat > 0 then
    redis.call("hset", job, unpack(flat))
  end
  -- Search indexes: the actor once, the entity when the job names it, the error's words
  -- when the job fails (its error no longer changes then).
  if t.n.actor and t.n.actor ~= "" and #t.n.actor <= 200 and not (old[6] and old[6] ~= "") then
    search_index(ns, "zadd", tenant, "actor", {t.n.actor}, t.at, id)
  end
  if t.f.subject then
    local entity = subject_entity(t.f.subject)
    if entity then
      search_index(ns, "zadd", tenant, "entity", {entity}, t.at, id)
    end
  end
  if state == "failed" and applied then
    local words = error_words((t.f.error_type or "") .. " " .. (t.f.error_message or ""))
    search_index(ns, "zadd", tenant, "error", words, t.at, id)
  end
  if #t.e > 0 then
    if redis.call("rpush", job .. ":events", unpack(t.e)) > max_events then
      redis.call("ltrim", job .. ":events", -max_events, -1)
    end
  end
  if t.p ~= "" then
    redis.call("zadd", ns .. ":job:" .. t.p .. ":children", "NX", t.at, id)
  end

  local stats_key = ns .. ":jobs:stats:" .. queue
  for _, name in ipairs(t.c) do
    redis.call("hincrby", stats_key, name, 1)
  end
  for i, bucket in ipairs(t.b) do
    redis.call("hincrby", stats_key, bucket, 1)
    redis.call("hincrbyfloat", stats_key, "duration_sum", t.d[i])
  end

  if state ~= "" or t.p ~= "" or t.f.waiting or t.f.waiting_ended or t.f.ended
      or t.f.retried_as then
    local relinked = t.p ~= "" and exists and not (old[5] and old[5] ~= "")
    rollup(ns, id, t.at, max_depth, relinked, t.f.retried_as ~= nil)
  end

  local hold = tonumber(t.h) or -1
  if state ~= "" and applied and t.k >= 0 then
    -- Retention counts per (tenant, queue, state), so one tenant's burst never prunes
    -- another's records, and spares every record younger than ``min_age``; ``cap``
    -- bounds a queue's records whatever their tenants and ages.
    local idx = index(queue, state)
    local held = index(queue, "held")
    local held_t = tindex(tenant, queue, "held")
    local young = min_age > 0 and "(" .. (t.at - min_age) or "+inf"
    local excess = redis.call("zcard", tindex(tenant, queue, state)) - t.k
    if excess > 0 then
      local victims = redis.call("zrangebyscore", tindex(tenant, queue, state), "-inf", young,
        "withscores", "limit", 0, math.min(excess, MAX_PRUNE))
      for i = 1, #victims, 2 do
        local vid = victims[i]
        local v = redis.call("hmget", ns .. ":job:" .. vid, "tenant", "parent", "tree_state")
        if state == "succeeded" and hold > 0 and (not v[2] or v[2] == "")
            and v[3] and HELD_TREES[v[3]] then
          -- A root whose tree failed (or still works or waits) stays findable under
          -- the failed retention: it leaves the succeeded index, not the store.
          redis.call("zrem", idx, vid)
          redis.call("zrem", tindex(v[1] or "", queue, state), vid)
          redis.call("zadd", held, victims[i + 1], vid)
          redis.call("zadd", tindex(v[1] or "", queue, "held"), victims[i + 1], vid)
        else
          drop(vid, queue, state)
        end
      end
    end
    if state == "succeeded" and hold > 0 then
      local over = redis.call("zcard", held_t) - hold
      if over > 0 then
        for _, vid in ipairs(redis.call("zrangebyscore", held_t, "-inf", young, "limit", 0,
            math.min(over, MAX_PRUNE))) do
          drop(vid, queue, state)
        end
      end
    end
    if cap >= 0 then
      for _, key in ipairs(state == "succeeded" and {idx, held} or {idx}) do
        local over = redis.call("zcard", key) - cap
        if over > 0 then
          for _, vid in ipairs(redis.call("zrange", key, 0, math.min(over, MAX_PRUNE) - 1)) do
            drop(vid, queue, state)
          end
        end
      end
    end
  end
  if applied then
    applied_count = applied_count + 1
  end
  end -- of "t.x ~= 1 or exists" (Lua 5.1 has no continue)
end
return applied_count
