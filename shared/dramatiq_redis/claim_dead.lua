-- Takes one message out of a dead-letter set: its id and its body. Returns the body,
-- or false if the id was not there (another operator took it, or it expired).
-- KEYS: dead-letter set, dead-letter bodies
-- ARGV: id
if redis.call("zrem", KEYS[1], ARGV[1]) == 0 then
  return false
end
local data = redis.call("hget", KEYS[2], ARGV[1])
redis.call("hdel", KEYS[2], ARGV[1])
return data or false
