-- Search indexes of job records (see shared/jobstatus/store.py). Defines functions
-- only; apply.lua and delete.lua are sent with it in front.
-- Search indexes (see JobStatusStore.search): sorted sets of job ids by actor, by
-- entity id and by the words of a failed job's error, for every tenant and per tenant.
local function sindex(ns, tenant, kind, value)
  if tenant and tenant ~= "" then
    return ns .. ":jobs:t:" .. tenant .. ":s:" .. kind .. ":" .. value
  end
  return ns .. ":jobs:s:" .. kind .. ":" .. value
end

-- The words of an error an error-text search finds: ASCII letters and digits, 3 to 40
-- long, the first 24 distinct ones (JobStatusStore.error_words does the same).
local function error_words(text)
  local out, seen = {}, {}
  for w in string.gmatch(string.lower(text or ""), "[%a%d]+") do
    if #w >= 3 and #w <= 40 and not seen[w] then
      seen[w] = true
      out[#out + 1] = w
      if #out >= 24 then
        break
      end
    end
  end
  return out
end

local function subject_entity(subject)
  if not subject or subject == "" then
    return nil
  end
  local ok, s = pcall(cjson.decode, subject)
  if ok and type(s) == "table" and type(s.entity_id) == "string" and s.entity_id ~= ""
      and #s.entity_id <= 200 then
    return s.entity_id
  end
  return nil
end

-- Add (op "zadd") or remove (op "zrem") ``id`` in the indexes of ``kind`` / ``values``:
-- every tenant's, and its own tenant's.
local function search_index(ns, op, tenant, kind, values, at, id)
  for _, value in ipairs(values) do
    local keys = {sindex(ns, "", kind, value)}
    if tenant and tenant ~= "" then
      keys[2] = sindex(ns, tenant, kind, value)
    end
    for _, key in ipairs(keys) do
      if op == "zadd" then
        redis.call("zadd", key, at, id)
      else
        redis.call("zrem", key, id)
      end
    end
  end
end

-- Forget a record in every search index (it is being deleted).
local function unindex(ns, id)
  local v = redis.call("hmget", ns .. ":job:" .. id, "tenant", "actor", "subject", "state",
    "error_type", "error_message")
  local tenant = v[1] or ""
  if v[2] and v[2] ~= "" then
    search_index(ns, "zrem", tenant, "actor", {v[2]}, 0, id)
  end
  local entity = subject_entity(v[3])
  if entity then
    search_index(ns, "zrem", tenant, "entity", {entity}, 0, id)
  end
  if v[4] == "failed" then
    local words = error_words((v[5] or "") .. " " .. (v[6] or ""))
    search_index(ns, "zrem", tenant, "error", words, 0, id)
  end
end
