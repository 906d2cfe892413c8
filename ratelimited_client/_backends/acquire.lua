-- ratelimited_client: admit `cost` units on every limit of one bucket, atomically,
-- on Redis's own clock. One call per admission attempt.
--
-- KEYS[1]      the bucket's pause key (a server-imposed pause, shared by processes)
-- KEYS[2]      the bucket's learned-limit key (a limit some process learned)
-- KEYS[3]      the bucket's virtual time (fair queuing between tenants)
-- KEYS[4]      the bucket's line: a hash of the processes' waiting heads
-- KEYS[5]      the tenant's finish tag
-- KEYS[6..n]   one key per limit, in the order of the specs below
-- ARGV[1]      "" to read Redis TIME, or a time in microseconds (tests only)
-- ARGV[2]      cost, in whole units (>= 1)
-- ARGV[3]      a unique id for this admission (sliding-window members)
-- ARGV[4]      "take" to admit when possible, "peek" to only report the wait
-- ARGV[5]      "1" to read the learned-limit key (buckets with no configured limit)
-- ARGV[6]      the asking head's place in the line, "<owner>|<tenant>" ("" : not
--              in the line; then ARGV[7..14] are ignored and nobody's turn is kept)
-- ARGV[7]      the tenant's weight (> 0)
-- ARGV[8]      the request's priority (an integer; higher goes sooner)
-- ARGV[9]      how long it has waited in its process, in microseconds
-- ARGV[10]     the promotion age in microseconds, or "-1" for none
-- ARGV[11]     how long a head's place outlives its expected turn, in microseconds
-- ARGV[12]     units the request must leave free beside its cost (a priority reserve)
-- ARGV[13]     the owner's prefix of ARGV[6] ("<owner>|"): one process's places do not
--              hold back its own head (its queue already chose which goes first)
-- ARGV[14]     "1" when the owner has more requests of the tenant waiting: admitted, the
--              place stays, with the tenant's next start tag, until the next one asks
-- ARGV[15]     microseconds a place may be late for its turn and still count as ready
-- then five per limit: kind ("sw" strict sliding window | "gcra"), limit, period
--                      in microseconds, burst (gcra; ignored for sw), and scope
--                      ("q": the bucket's quota | "t": the tenant's own cap)
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
-- place for its tenant in KEYS[4] ("priority since start cost deadline turn weight
-- more tenant-key"),
-- and keeps it while the tenant has more waiting there (so a tenant between two
-- requests is not taken for idle, and keeps its start tag). Places are
-- ordered as in one process's queue: promoted ones first (longest waiting first),
-- then higher priority, then the lower start tag (start-time fair queuing: a
-- tenant's start is the later of the bucket's virtual time and its last finish; an
-- admission moves its finish on by cost / weight). A head is admitted only when its
-- cost fits after the places ahead of it, and told to come back when its own slot
-- frees, not before. A place ahead whose tenant has more waiting, and that is ready
-- (not late for its turn), counts for all its tenant would be served before this
-- start tag, (start - its start) × its weight: when a window frees many slots at
-- once, the shares still follow the weights instead of who asks fastest; a tenant
-- that cannot keep up holds nobody back. A place past its deadline (a process gone) is dropped. A
-- tenant at its own cap gives up its place, so it holds nobody back.
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
local member = ARGV[6]
local wait = 0

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
local longest = 0
if member ~= "" then
  local priority = tonumber(ARGV[8])
  local promote = tonumber(ARGV[10])
  since = now - tonumber(ARGV[9])
  local promoted = promote >= 0 and now - since >= promote
  local vtime = tonumber(redis.call("GET", KEYS[3]) or "0")
  local finish = tonumber(redis.call("GET", KEYS[5]) or "0")
  start = math.max(vtime, finish)
  local places = redis.call("HGETALL", KEYS[4])
  local others = {}
  local owner = ARGV[13]
  local fresh = tonumber(ARGV[15])
  for i = 1, #places, 2 do
    local field = places[i]
    local p, s, st, c, deadline, turn, w, more, tenant = string.match(
      places[i + 1], "^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (.*)$"
    )
    deadline = tonumber(deadline)
    if deadline == nil or deadline < now then
      redis.call("HDEL", KEYS[4], field)
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
  longest = tonumber(ARGV[11])
end
local held = tonumber(ARGV[12])

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
for i = 6, #KEYS do
  local base = 15 + (i - 6) * 5
  local spec = {
    key = KEYS[i],
    kind = ARGV[base + 1],
    limit = tonumber(ARGV[base + 2]),
    period = tonumber(ARGV[base + 3]),
    burst = tonumber(ARGV[base + 4]),
    scope = ARGV[base + 5],
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
  wait = math.min(wait, math.max(soonest, paused * 1000, tonumber(ARGV[15])))
end

if wait > 0 or ARGV[4] ~= "take" then
  if member ~= "" then
    if capped == 1 then
      redis.call("HDEL", KEYS[4], member) -- at its own cap: it holds nobody back
    else
      local place = string.format(
        "%d %.0f %.17g %d %.0f %.0f %s %s %s",
        tonumber(ARGV[8]), since, start, cost, now + wait + longest, now + wait,
        ARGV[7], ARGV[14], KEYS[5]
      )
      redis.call("HSET", KEYS[4], member, place)
      local ttl = math.ceil((wait + longest) / 1000) + 1000
      if redis.call("PTTL", KEYS[4]) < ttl then
        redis.call("PEXPIRE", KEYS[4], ttl)
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
  local vtime = tonumber(redis.call("GET", KEYS[3]) or "0")
  if start > vtime then
    vtime = start
  end
  local finish = start + cost / tonumber(ARGV[7])
  redis.call("SET", KEYS[3], string.format("%.17g", vtime), "PX", horizon)
  redis.call("SET", KEYS[5], string.format("%.17g", finish), "PX", horizon)
  if ARGV[14] == "1" then
    -- its next start: its tag runs on while it keeps waiting
    local place = string.format(
      "%d %.0f %.17g %d %.0f %.0f %s 1 %s",
      tonumber(ARGV[8]), now, finish, cost, now + longest, now, ARGV[7], KEYS[5]
    )
    redis.call("HSET", KEYS[4], member, place)
    if redis.call("PTTL", KEYS[4]) < math.ceil(longest / 1000) + 1000 then
      redis.call("PEXPIRE", KEYS[4], math.ceil(longest / 1000) + 1000)
    end
  else
    redis.call("HDEL", KEYS[4], member)
  end
end
return {1, "0", stamp, learned}
