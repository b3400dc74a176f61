-- Drops one job record (JobStatusStore.delete); sent after rollup.lua and search.lua.
-- ARGV: namespace, job id, now (ms), max tree depth.
local ns = ARGV[1]
local id = ARGV[2]
local at = tonumber(ARGV[3])
local max_depth = tonumber(ARGV[4])
local job = ns .. ":job:" .. id
local v = redis.call("hmget", job, "state", "tenant", "queue", "parent", "tree_state")
if not v[1] then
  return 0
end
if v[5] and (not v[4] or v[4] == "") then
  redis.call("zrem", ns .. ":jobs:" .. v[3] .. ":tree." .. v[5], id)
  if v[2] and v[2] ~= "" then
    redis.call("zrem", ns .. ":jobs:t:" .. v[2] .. ":" .. v[3] .. ":tree." .. v[5], id)
  end
end
redis.call("zrem", ns .. ":jobs:" .. v[3] .. ":" .. v[1], id)
redis.call("zrem", ns .. ":jobs:" .. v[3] .. ":held", id)
redis.call("zrem", ns .. ":jobs:t:" .. (v[2] or "") .. ":" .. v[3] .. ":" .. v[1], id)
redis.call("zrem", ns .. ":jobs:t:" .. (v[2] or "") .. ":" .. v[3] .. ":held", id)
unindex(ns, id)
redis.call("del", job, job .. ":events", job .. ":children", job .. ":tree")
if v[4] and v[4] ~= "" then
  -- A dropped job no longer counts in its parent's tree.
  redis.call("zrem", ns .. ":job:" .. v[4] .. ":children", id)
  redis.call("zrem", ns .. ":job:" .. v[4] .. ":tree", id)
  rollup(ns, v[4], at, max_depth, false, false)
end
return 1
