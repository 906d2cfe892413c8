-- ratelimited_client: re-date one admission's sliding-window units to when its
-- response arrived (the request reached the server no later than that), so a
-- slow first burst cannot leave room for an early second one. Never moves a
-- unit earlier; units already gone stay gone.
--
-- KEYS[1..n]   the bucket's sliding-window keys
-- ARGV[1]      "" to read Redis TIME, or a time in microseconds (tests only)
-- ARGV[2]      cost, in whole units
-- ARGV[3]      the admission's id
-- ARGV[4]      microseconds to add (the local limiters add 1 ms)

local now
if ARGV[1] ~= "" then
  now = tonumber(ARGV[1])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local at = string.format("%.0f", now + tonumber(ARGV[4]))
for i = 1, #KEYS do
  for unit = 1, tonumber(ARGV[2]) do
    redis.call("ZADD", KEYS[i], "XX", "GT", at, ARGV[3] .. ":" .. unit)
  end
end
return at
