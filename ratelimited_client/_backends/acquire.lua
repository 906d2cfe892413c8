-- ratelimited_client: admit `cost` units on every limit of one bucket, atomically,
-- on Redis's own clock. One call per admission attempt.
--
-- KEYS[1]      the bucket's pause key (a server-imposed pause, shared by processes)
-- KEYS[2]      the bucket's learned-limit key (a limit some process learned)
-- KEYS[3..n+2] one key per limit, in the order of the specs below
-- and with a place in the line (ARGV[7]), three more:
-- KEYS[n+3]    the bucket's virtual time (fair queuing between tenants)
-- KEYS[n+4]    the bucket's line: a hash of the processes' waiting heads
-- KEYS[n+5]    the tenant's finish tag
-- ARGV[1]      "" to read Redis TIME, or a time in microseconds (tests only)
-- ARGV[2]      cost, in whole units (>= 1)
-- ARGV[3]      a unique id for this admission (sliding-window members)
-- ARGV[4]      "take" to admit when possible, "peek" to only report the wait
-- ARGV[5]      "1" to read the learned-limit key (buckets with no configured limit)
-- ARGV[6]      how many of the limits are the bucket's quota (the rest: the tenant's
--              own cap)
-- ARGV[7]      the asking head's place in the line, "<owner>|<tenant>" ("" : not
--              in the line; then ARGV[8] is "" and nobody's turn is kept). One
--              process's places do not hold back its own head (its queue already
--              chose which goes first).
-- ARGV[8]      the place's terms, space-separated: the tenant's weight (> 0); the
--              request's priority (higher goes sooner); how long it has waited in its
--              process (µs); the promotion age (µs, -1 for none); how long a place
--              outlives its expected turn (µs); the units it must leave free beside
--              its cost (a priority reserve); 1 when the owner has more requests of
--              the tenant waiting (admitted, the place stays, with the tenant's next
--              start tag, until the next one asks), else 0; how late a place may be
--              for its turn and still count as ready (µs)
-- then four per limit: kind ("sw" strict sliding window | "gcra"), limit, period
--                      in microseconds, burst (gcra; ignored for sw)
--
-- Returns {admitted (0|1), wait in microseconds, now in microseconds, the learned
-- limit or ""} (as strings).
--
-- Units are never booked ahead: the decision is made when the request can go,
-- from slots already re-dated to when their answers arrived (settle.lua).
-- A sliding window keeps one sorted-set member per unit, scored by its time;
-- GCRA keeps the theoretical arrival time.
--
-- The line: each process's head of the bucket's queue that had to wait keeps a
-- place for its tenant in KEYS[n+4] ("priority since start cost deadline turn
-- weight more tenant-key"), and keeps it while the tenant has more waiting there
-- (so a tenant between two requests is not taken for idle, and keeps its start
-- tag). Places are ordered as in one process's queue: promoted ones first (longest
-- waiting first), then higher priority, then the lower start tag (start-time fair
-- queuing: a tenant's start is the later of the bucket's virtual time and its last
-- finish; an admission moves its finish on by cost / weight). A head is admitted
-- only when its cost fits after the places ahead of it, and told to come back when
-- its own slot frees, not before. A place ahead whose tenant has more waiting, and
-- that is ready (not late for its turn), counts for all its tenant would be served
-- before this start tag, (start - its start) x its weight: when a window frees many
-- slots at once, the shares still follow the weights instead of who asks fastest;
-- a tenant that cannot keep up holds nobody back. A place past its deadline (a
-- process gone) is dropped. A tenant at its own cap gives up its place, so it
-- holds nobody back.
-- Keys expire once they hold nothing that could delay anyone.

local now
if ARGV[1] ~= "" then
  now = tonumber(ARGV[1])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local cost = tonumber(ARGV[2])
local id = ARGV[3]
local limits = (#ARGV - 8) / 4
local quota = tonumber(ARGV[6])
local member = ARGV[7]
local wait = 0
local line, vtime_key, finish_key = nil, nil, nil
local weight, priority, waited, promote, grace, held, more, fresh = "1", 0, 0, -1, 0, 0, "0", 0
if member ~= "" then
  vtime_key, line, finish_key = KEYS[limits + 3], KEYS[limits + 4], KEYS[limits + 5]
  local w, p, a, pr, g, h, m, f = string.match(
    ARGV[8], "^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$"
  )
  weight, priority, waited, promote = w, tonumber(p), tonumber(a), tonumber(pr)
  grace, held, more, fresh = tonumber(g), tonumber(h), m, tonumber(f)
end

local paused = redis.call("PTTL", KEYS[1])
if paused > 0 then
  wait = paused * 1000
end

local learned = ""
if ARGV[5] == "1" then
  learned = redis.call("GET", KEYS[2]) or ""
end

-- The line: the units of the places ahead of this head, and its start tag.
local ahead = 0
local costs = 0 -- the costs alone of the places ahead
local start = 0
local since = now
if member ~= "" then
  since = now - waited
  local promoted = promote >= 0 and now - since >= promote
  local vtime = tonumber(redis.call("GET", vtime_key) or "0")
  local finish = tonumber(redis.call("GET", finish_key) or "0")
  start = math.max(vtime, finish)
  local places = redis.call("HGETALL", line)
  local others = {}
  local owner = string.match(member, "^(.-|)")
  for i = 1, #places, 2 do
    local field = places[i]
    local p, s, st, c, deadline, turn, w, more, tenant = string.match(
      places[i + 1], "^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (.*)$"
    )
    deadline = tonumber(deadline)
    if deadline == nil or deadline < now then
      redis.call("HDEL", line, field)
    elseif field == member then
      start = tonumber(st) -- its tag was given when the tenant began to wait
    elseif string.sub(field, 1, #owner) ~= owner then
      others[#others + 1] = {
        field = field,
        priority = tonumber(p),
        since = tonumber(s),
        start = tonumber(st),
        cost = tonumber(c),
        ready = more == "1" and now <= tonumber(turn) + fresh,
        weight = tonumber(w),
      }
    end
  end
  for _, other in ipairs(others) do
    local first
    local other_promoted = promote >= 0 and now - other.since >= promote
    if other_promoted ~= promoted then
      first = other_promoted
    elseif promoted then
      first = other.since < since or (other.since == since and other.field < member)
    elseif other.priority ~= priority then
      first = other.priority > priority
    elseif other.start ~= start then
      first = other.start < start
    else
      first = other.since < since or (other.since == since and other.field < member)
    end
    if first then
      local units = other.cost
      if other.ready and other.priority == priority and other.start < start then
        units = math.max(units, math.floor((start - other.start) * other.weight + 1e-9))
      end
      ahead = ahead + units
      costs = costs + other.cost
    end
  end
end

-- When `need` units of `spec` fit (microseconds, on Redis's clock).
local function free_time(spec, need)
  if spec.kind == "sw" then
    local over = spec.count + need - spec.limit
    if over <= 0 then
      return now
    end
    local entry
    if over <= spec.count then
      entry = redis.call("ZRANGE", spec.key, over - 1, over - 1, "WITHSCORES")
    else
      -- more ahead than the window holds: at least until all of it has gone
      -- (asked again then, when the places ahead have taken theirs)
      entry = redis.call("ZRANGE", spec.key, -1, -1, "WITHSCORES")
    end
    if entry[2] then
      return tonumber(entry[2]) + spec.period
    end
    return now + spec.period
  end
  local tat = spec.tat
  if tat < now then
    tat = now
  end
  return tat + (need - spec.burst) * spec.emission
end

local specs = {}
local capped = 0
local shares = ahead - costs -- what the ready places ahead are owed beyond their costs
local soonest = 0 -- the wait were the places ahead to take only their costs
for i = 1, limits do
  local base = 8 + (i - 1) * 4
  local spec = {
    key = KEYS[i + 2],
    kind = ARGV[base + 1],
    limit = tonumber(ARGV[base + 2]),
    period = tonumber(ARGV[base + 3]),
    burst = tonumber(ARGV[base + 4]),
    scope = i <= quota and "q" or "t",
  }
  if spec.kind == "sw" then
    -- half-open window: a unit counted at t no longer counts from t + period on
    redis.call("ZREMRANGEBYSCORE", spec.key, "-inf", string.format("%.0f", now - spec.period))
    spec.count = redis.call("ZCARD", spec.key)
  else
    spec.emission = spec.period / spec.limit
    spec.tat = tonumber(redis.call("GET", spec.key) or now)
  end
  -- The bucket's quota must fit the places ahead and any reserve too; a tenant's
  -- own cap only the request.
  local free_at
  if spec.scope == "q" then
    free_at = free_time(spec, cost + ahead + held)
    if shares > 0 then
      soonest = math.max(soonest, free_time(spec, cost + costs + held) - now)
    end
  else
    free_at = free_time(spec, cost)
    soonest = math.max(soonest, free_at - now)
    if free_at > now then
      capped = 1
    end
  end
  if free_at - now > wait then
    wait = free_at - now
  end
  specs[#specs + 1] = spec
end

if shares > 0 and wait > soonest then
  -- Held back by what the places ahead are owed: they may not take it (gone idle,
  -- slower than their share), so come back soon to see, not at the far slot.
  wait = math.min(wait, math.max(soonest, paused * 1000, fresh))
end

if wait > 0 or ARGV[4] ~= "take" then
  if member ~= "" then
    if capped == 1 then
      redis.call("HDEL", line, member) -- at its own cap: it holds nobody back
    else
      local place = string.format(
        "%d %.0f %.17g %d %.0f %.0f %s %s %s",
        priority, since, start, cost, now + wait + grace, now + wait,
        weight, more, finish_key
      )
      redis.call("HSET", line, member, place)
      local ttl = math.ceil((wait + grace) / 1000) + 1000
      if redis.call("PTTL", line) < ttl then
        redis.call("PEXPIRE", line, ttl)
      end
    end
  end
  return {0, string.format("%.0f", wait), string.format("%.0f", now), learned}
end

local at = now
local stamp = string.format("%.0f", at)
local horizon = 60000
for _, spec in ipairs(specs) do
  horizon = math.max(horizon, math.ceil(spec.period / 1000) * 10)
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
if member ~= "" then
  -- The bucket's virtual time is the start tag of the last one served; the
  -- tenant's finish moves on by what it took, over its weight.
  local vtime = tonumber(redis.call("GET", vtime_key) or "0")
  if start > vtime then
    vtime = start
  end
  local finish = start + cost / tonumber(weight)
  redis.call("SET", vtime_key, string.format("%.17g", vtime), "PX", horizon)
  redis.call("SET", finish_key, string.format("%.17g", finish), "PX", horizon)
  if more == "1" then
    -- its next start: its tag runs on while it keeps waiting
    local place = string.format(
      "%d %.0f %.17g %d %.0f %.0f %s 1 %s",
      priority, now, finish, cost, now + grace, now, weight, finish_key
    )
    redis.call("HSET", line, member, place)
    if redis.call("PTTL", line) < math.ceil(grace / 1000) + 1000 then
      redis.call("PEXPIRE", line, math.ceil(grace / 1000) + 1000)
    end
  else
    redis.call("HDEL", line, member)
  end
end
return {1, "0", stamp, learned}
