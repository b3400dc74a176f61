-- Adds per-minute increments to the queues' day strings (MinuteStats.write and .send).
-- ARGV: namespace, slots, slot words, ttl ms, JSON [[queue, minute, [word, n, ...]], ...]
local ns, slots, width, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
for _, item in ipairs(cjson.decode(ARGV[5])) do
  local key = ns .. ":jobs:minutes:" .. item[1]
  local minute = item[2]
  local base = (minute % slots) * width
  if redis.call("exists", key) == 0 then
    -- Allocate the whole day at once: the string never grows after this.
    redis.call("setrange", key, slots * width * 4 - 1, "\0")
  end
  local stamp = redis.call("bitfield", key, "get", "u32", "#" .. base)[1]
  local usable = true
  if stamp ~= minute then
    if stamp > minute then
      usable = false  -- the slot holds a later minute: this one is more than a day old
    else
      redis.call("setrange", key, base * 4, string.rep("\0", width * 4))
      redis.call("bitfield", key, "set", "u32", "#" .. base, minute)
    end
  end
  if usable then
    local args = {"overflow", "sat"}
    local incs = item[3]
    for i = 1, #incs, 2 do
      args[#args + 1] = "incrby"
      args[#args + 1] = "u32"
      args[#args + 1] = "#" .. (base + incs[i])
      args[#args + 1] = incs[i + 1]
    end
    redis.call("bitfield", key, unpack(args))
  end
  redis.call("pexpire", key, ttl)
end
return 1
