-- ratelimited_client: admit `cost` units on every limit of one bucket, atomically,
-- on Redis's own clock. One call per admission attempt.
--
-- KEYS[1]      the bucket's pause key (a server-imposed pause, shared by processes)
-- KEYS[2]      the bucket's learned-limit key (a limit some process learned)
-- KEYS[3..n]   one key per limit of the bucket, in the order of the specs below
-- ARGV[1]      "" to read Redis TIME, or a time in microseconds (tests only)
-- ARGV[2]      cost, in whole units (>= 1)
-- ARGV[3]      a unique id for this admission (sliding-window members)
-- ARGV[4]      "take" to admit when possible, "peek" to only report the wait
-- ARGV[5]      "1" to read the learned-limit key (buckets with no configured limit)
-- then four per limit: kind ("sw" strict sliding window | "gcra"),
--                      limit, period in microseconds, burst (gcra; ignored for sw)
--
-- Returns {admitted (0|1), wait in microseconds, now in microseconds, the learned
-- limit or ""} (as strings).
-- Units are never booked ahead: the decision is made when the request can go,
-- from slots already re-dated to when their answers arrived (settle.lua).
-- A sliding window keeps one sorted-set member per unit, scored by its time;
-- GCRA keeps the theoretical arrival time. Keys expire once they hold nothing
-- that could delay anyone.

local now
if ARGV[1] ~= "" then
  now = tonumber(ARGV[1])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local cost = tonumber(ARGV[2])
local id = ARGV[3]
local wait = 0

local paused = redis.call("PTTL", KEYS[1])
if paused > 0 then
  wait = paused * 1000
end

local learned = ""
if ARGV[5] == "1" then
  learned = redis.call("GET", KEYS[2]) or ""
end

local specs = {}
for i = 3, #KEYS do
  local base = 5 + (i - 3) * 4
  local spec = {
    key = KEYS[i],
    kind = ARGV[base + 1],
    limit = tonumber(ARGV[base + 2]),
    period = tonumber(ARGV[base + 3]),
    burst = tonumber(ARGV[base + 4]),
  }
  if spec.kind == "sw" then
    -- half-open window: a unit counted at t no longer counts from t + period on
    redis.call("ZREMRANGEBYSCORE", spec.key, "-inf", string.format("%.0f", now - spec.period))
    local count = redis.call("ZCARD", spec.key)
    if count + cost > spec.limit then
      local index = count + cost - spec.limit - 1
      local entry = redis.call("ZRANGE", spec.key, index, index, "WITHSCORES")
      local free_at = tonumber(entry[2]) + spec.period
      if free_at - now > wait then
        wait = free_at - now
      end
    end
  else
    local emission = spec.period / spec.limit
    spec.emission = emission
    spec.tat = tonumber(redis.call("GET", spec.key) or now)
    local tat = spec.tat
    if tat < now then
      tat = now
    end
    local allow_at = tat + cost * emission - spec.burst * emission
    if allow_at - now > wait then
      wait = allow_at - now
    end
  end
  specs[#specs + 1] = spec
end

if wait > 0 or ARGV[4] ~= "take" then
  return {0, string.format("%.0f", wait), string.format("%.0f", now), learned}
end

local at = now
local stamp = string.format("%.0f", at)
for _, spec in ipairs(specs) do
  if spec.kind == "sw" then
    for unit = 1, cost do
      redis.call("ZADD", spec.key, stamp, id .. ":" .. unit)
    end
    redis.call("PEXPIRE", spec.key, math.ceil(spec.period / 1000) + 1000)
  else
    local tat = spec.tat
    if tat < at then
      tat = at
    end
    local new_tat = tat + cost * spec.emission
    local ttl = math.ceil((new_tat - now) / 1000) + 1000
    redis.call("SET", spec.key, string.format("%.0f", new_tat), "PX", ttl)
  end
end
return {1, "0", stamp, learned}
