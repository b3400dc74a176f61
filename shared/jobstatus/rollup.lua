-- Tree-state rollup of job records (see shared/jobstatus/store.py). Defines functions
-- only; apply.lua and delete.lua are sent with it in front.
-- Tree states by precedence (see TREE_PRECEDENCE in Python).
-- ``cancelled`` scores 0.5 so that the scores kept in ``:tree`` sets before it existed
-- keep their meaning.
local TREE_NAMES = {[0] = "succeeded", [0.5] = "cancelled", [1] = "queued", [2] = "running",
                    [3] = "waiting", [4] = "retrying", [5] = "failed"}
local TREE_RANK = {succeeded = 0, cancelled = 0.5, queued = 1, running = 2, waiting = 3,
                   retrying = 4, failed = 5}

-- Recompute the tree state of job ``id`` from its own state and its children's tree
-- states (the ``:tree`` sorted set, scored by precedence), then walk up to its parent,
-- at most ``max_depth`` levels, stopping at the first ancestor that does not change.
-- ``relinked``: the job just got its parent (it may have been indexed as a root);
-- ``force``: its parent's view of it changed even if its own tree did not (retried).
local function rollup(ns, id, at, max_depth, relinked, force)
  local depth = 0
  while id and id ~= "" and depth <= max_depth do
    local job = ns .. ":job:" .. id
    local r = redis.call("hmget", job, "state", "waiting", "waiting_ended", "retried_as",
      "parent", "tree_state", "tree_cause", "tenant", "queue", "actor", "error_type",
      "error_message", "ended", "ended_reason")
    if not r[1] then
      return
    end
    local base = TREE_RANK[r[1]] or 0
    local own = base
    local waiting = r[2] and r[2] ~= "" and not (r[3] and r[3] ~= "")
    if waiting and own < 3 then
      own = 3
    end
    -- The job's execution was ended by someone else (cancelled, or failed outside the
    -- run): once the job itself is done, that is how its own work ended.
    local ended = r[13] and r[13] ~= "" and TREE_RANK[r[13]] or nil
    if ended and not waiting and ended > own then
      own = ended
    end
    local score, cause = own, ""
    local top = redis.call("zrevrange", job .. ":tree", 0, 0, "withscores")
    if top[1] and tonumber(top[2]) > own then
      score = tonumber(top[2])
      cause = redis.call("hget", ns .. ":job:" .. top[1], "tree_cause")
      if not cause or cause == "" then
        cause = cjson.encode({job = top[1]})  -- pruned by retention
      end
    elseif own > 0 then
      local c = {job = id, actor = r[10] or ""}
      if own == 3 and own > base then
        local ok, marker = pcall(cjson.decode, r[2])
        c.waiting = ok and marker or {}
      elseif ended and own == ended and own > base then
        c.ended = {status = r[13], reason = r[14] or ""}
        if r[13] == "failed" then
          c.error = {type = "ExecutionFailed", message = r[14] or ""}
        end
      elseif own >= 4 and r[11] and r[11] ~= "" then
        c.error = {type = r[11], message = r[12] or ""}
      end
      cause = cjson.encode(c)
    end
    local name = TREE_NAMES[score]
    local parent = r[5] or ""
    local changed = name ~= r[6] or cause ~= (r[7] or "")
    if not changed and not relinked and not force then
      return
    end
    force = false
    if changed then
      redis.call("hset", job, "tree_state", name, "tree_cause", cause)
    end
    local queue, tenant = r[9] or "", r[8] or ""
    local function forget_root(state)
      if state and state ~= "" and queue ~= "" then
        redis.call("zrem", ns .. ":jobs:" .. queue .. ":tree." .. state, id)
        if tenant ~= "" then
          redis.call("zrem", ns .. ":jobs:t:" .. tenant .. ":" .. queue .. ":tree." .. state, id)
        end
      end
    end
    if parent == "" then
      -- Roots (a write's job, a manual run) are indexed by tree state for ?tree_state=.
      if name ~= r[6] and queue ~= "" then
        forget_root(r[6])
        redis.call("zadd", ns .. ":jobs:" .. queue .. ":tree." .. name, at, id)
        if tenant ~= "" then
          redis.call("zadd", ns .. ":jobs:t:" .. tenant .. ":" .. queue .. ":tree." .. name, at, id)
        end
      end
      return
    end
    if relinked then
      forget_root(r[6])
      relinked = false
    end
    if redis.call("exists", ns .. ":job:" .. parent) == 0 then
      return  -- pruned: nothing above it to update
    end
    local siblings = ns .. ":job:" .. parent .. ":tree"
    if r[1] == "failed" and r[4] and r[4] ~= "" then
      -- Retried by an operator: the retry (a sibling) stands for it now.
      redis.call("zrem", siblings, id)
    else
      redis.call("zadd", siblings, score, id)
    end
    id = parent
    depth = depth + 1
  end
end
