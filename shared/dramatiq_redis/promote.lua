-- Takes a delayed message's body out of its delay queue (list, bodies, and the ack set
-- of the worker holding it in memory, if one does) and sends the message onto its queue
-- under a new id, then wakes the queue's consumers. Taking the body is what the worker
-- does too when the message comes due (move_due.lua), so exactly one of them sends it.
-- Returns 1 if it sent it, 0 if the body was gone.
-- KEYS: delay-queue list, delay-queue bodies, queue list, queue bodies, heartbeats
-- ARGV: delayed id, new id, encoded message, ack-set key prefix, ack-set key suffix
--       (a broker's ack set of the delay queue is prefix .. broker id .. suffix),
--       wake-up channel
if redis.call("hdel", KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call("lrem", KEYS[1], 1, ARGV[1])
for _, broker_id in ipairs(redis.call("zrange", KEYS[5], 0, -1)) do
  redis.call("srem", ARGV[4] .. broker_id .. ARGV[5], ARGV[1])
end
redis.call("hset", KEYS[4], ARGV[2], ARGV[3])
redis.call("rpush", KEYS[3], ARGV[2])
redis.call("publish", ARGV[6], "1")
return 1
