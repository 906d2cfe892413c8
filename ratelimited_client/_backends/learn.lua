-- ratelimited_client: publish a limit one process learned from the server, so every
-- process on the bucket keeps to it. Learned limits only ever tighten: a looser
-- one does not replace a stricter one that is still fresh.
--
-- KEYS[1]      the bucket's learned-limit key
-- ARGV[1]      the limit as "<per second> <limit>/<period>s"
-- ARGV[2]      how long it stays, in milliseconds

local wanted = tonumber(string.match(ARGV[1], "^(%S+)"))
local current = redis.call("GET", KEYS[1])
if current then
  local held = tonumber(string.match(current, "^(%S+)"))
  if held and held <= wanted then
    redis.call("PEXPIRE", KEYS[1], ARGV[2])
    return current
  end
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return ARGV[1]
