-- The two-step login of users with a TOTP factor, for scripts/load.sh: POST /auth/login
-- with the password, then POST /auth/login/mfa with the mfa_token of that answer and the
-- user's code of the current time step. Run it with one connection a thread (wrk -t N
-- -c N): wrk tells a script's response() nothing of the connection it came on, so with
-- one connection a thread the answers come in the order of the requests.
--
-- Arguments: the file scripts/mfa_users.py codes wrote (a first line "FIRST_STEP STEPS",
-- then per user, tab-separated: username, password, the last step the server accepted,
-- the codes of the STEPS steps from FIRST_STEP), the number of wrk threads, and a state
-- file: the steps this script sent a code of, per user ("line step"), read at the start
-- and written at the end, so that runs one after another (the rounds of load.sh) know
-- what the ones before used. Thread i of n takes users i, i+n, i+2n… A code is accepted
-- once per user and step (the server keeps the last step accepted and refuses a code of
-- it or an earlier one), so a user logs in at most once a step; when every user of a
-- thread has, the thread waits for the next step (delay()) and counts the wait, and the
-- case does not count (more users needed: MFA_USERS).
--
-- done() prints "mfa logins/s: X" (second steps answered 200, per second of the run) and
-- the counts of what went wrong.
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

local STEP_SECS = 30
local users = {}
local first_step, steps
local next_user = 0
-- The request on the way: "password", "code" or nil; the second step's token and user.
local sent, mfa_token, user
-- What the done() of the main state collects from every thread.
logins, refused, no_token, lost, waits = 0, 0, 0, 0, 0

-- The steps used, by line of the codes file, as the state file holds them.
local function read_state(path)
  local steps = {}
  local file = io.open(path)
  if file then
    for text in file:lines() do
      local line, step = text:match("^(%d+) (%d+)$")
      steps[tonumber(line)] = tonumber(step)
    end
    file:close()
  end
  return steps
end

function init(args)
  local n = tonumber(args[2])
  state_file = args[3]
  used = {}
  local before = read_state(state_file)
  local line = 0
  for text in io.lines(args[1]) do
    if line == 0 then
      local a, b = text:match("^(%d+) (%d+)$")
      first_step, steps = tonumber(a), tonumber(b)
    elseif (line - 1) % n == index - 1 then
      local name, password, last, codes = text:match("^([^\t]+)\t([^\t]+)\t(%d+)\t(.*)$")
      local u = {
        body = string.format('{"username":"%s","password":"%s"}', name, password),
        line = line,
        last = math.max(tonumber(last), before[line] or 0),
        codes = {},
      }
      for code in codes:gmatch("%d+") do u.codes[#u.codes + 1] = code end
      users[#users + 1] = u
    end
    line = line + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local function step_now()
  return math.floor(os.time() / STEP_SECS)
end

-- The next user of this thread who has not logged in during the step `now` (and whose
-- codes reach a step past it, for a second step a step later), or nil.
local function pick(now)
  for _ = 1, #users do
    next_user = next_user % #users + 1
    local u = users[next_user]
    if u.last < now and now - first_step + 2 <= #u.codes then return u end
  end
  return nil
end

-- The user delay() found for the next first step.
local chosen

function delay()
  if mfa_token then return 0 end
  local now = step_now()
  chosen = pick(now)
  if chosen then return 0 end
  -- os.time() counts whole seconds, so this ends at the next step or just after it.
  waits = waits + 1
  return ((now + 1) * STEP_SECS - os.time()) * 1000 + 10
end

-- wrk calls request() once before the run, in the first thread, to check what it
-- returns; that call must leave no trace.
local checked = false

function request()
  if not checked then
    checked = true
    if index == 1 then return wrk.format("GET", "/healthz") end
  end
  if sent then
    -- No answer came to the last request (the connection broke): start over.
    lost = lost + 1
    mfa_token = nil
  end
  if mfa_token then
    local now = step_now()
    local code = user.codes[now - first_step + 1] or "000000"
    user.last = now
    used[user.line] = now
    sent = "code"
    local body = '{"mfa_token":"' .. mfa_token .. '","code":"' .. code .. '"}'
    mfa_token = nil
    return wrk.format(nil, "/auth/login/mfa", nil, body)
  end
  user, chosen = chosen or pick(step_now()), nil
  if user == nil then
    -- Only after a connection broke during a wait; harmless, and counted.
    waits = waits + 1
    sent = "health"
    return wrk.format("GET", "/healthz")
  end
  sent = "password"
  return wrk.format(nil, "/auth/login", nil, user.body)
end

function response(status, headers, body)
  if sent == "password" then
    mfa_token = body:match('"mfa_token":"(tgf_[%w_%-]+)"')
    if not mfa_token then no_token = no_token + 1 end
  elseif sent == "code" then
    if status == 200 then logins = logins + 1 else refused = refused + 1 end
  end
  sent = nil
end

function done(summary, latency, requests)
  local total = { logins = 0, refused = 0, no_token = 0, lost = 0, waits = 0 }
  for _, thread in ipairs(threads) do
    for key in pairs(total) do total[key] = total[key] + (thread:get(key) or 0) end
  end
  local path = threads[1]:get("state_file")
  local steps = read_state(path)
  for _, thread in ipairs(threads) do
    for line, step in pairs(thread:get("used")) do steps[line] = step end
  end
  local file = assert(io.open(path, "w"))
  for line, step in pairs(steps) do file:write(line, " ", step, "\n") end
  file:close()
  local secs = summary.duration / 1e6
  io.stderr:write(string.format(
    "mfa logins/s: %.2f (logins %d in %.1f s; second steps refused %d, first steps without a token %d, " ..
      "requests lost %d, waits for a fresh step %d)\n",
    total.logins / secs, total.logins, secs, total.refused, total.no_token, total.lost, total.waits))
end
