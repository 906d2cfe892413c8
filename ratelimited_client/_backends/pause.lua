-- ratelimited_client: a server-imposed pause of one bucket, shared by every process.
-- Extends an existing pause, never shortens it.
--
-- KEYS[1]      the bucket's pause key
-- ARGV[1]      the pause, in milliseconds from now

local wanted = tonumber(ARGV[1])
local left = redis.call("PTTL", KEYS[1])
if left < wanted then
  redis.call("SET", KEYS[1], "1", "PX", wanted)
  return wanted
end
return left
