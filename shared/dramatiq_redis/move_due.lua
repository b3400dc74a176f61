-- Moves a due delayed message onto its queue, only if its body is still in the delay
-- queue (an operator's promote may have taken it and sent it already): whoever takes
-- the body sends the message. Returns 1 if it moved it, 0 if the body was gone.
-- KEYS: delay-queue bodies, queue list, queue bodies
-- ARGV: delayed id, new id, encoded message
if redis.call("hdel", KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call("hset", KEYS[3], ARGV[2], ARGV[3])
redis.call("rpush", KEYS[2], ARGV[2])
return 1
