-- POST /auth/refresh along rotating chains. The file given as the first argument holds
-- one refresh token per line; wrk thread i of n takes lines i, i+n, i+2n… Each request
-- takes a token from the thread's pool and each response puts its successor back, so
-- every chain is followed one rotation at a time. A refused refresh ends its chain.
local counter = 0
local threads = {}

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

local pool = {}
local broken = 0

function init(args)
  local n = tonumber(args[2])
  local line = 0
  for token in io.lines(args[1]) do
    if line % n == index - 1 then pool[#pool + 1] = token end
    line = line + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local token = table.remove(pool)
  if token == nil then
    -- Every chain of this thread is in flight or ended; ask for something harmless.
    return wrk.format("GET", "/healthz")
  end
  return wrk.format(nil, "/auth/refresh", nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local successor = body:match('"refresh_token":"(tgr_[%w_%-]+)"')
  if successor then
    pool[#pool + 1] = successor
  elseif status ~= 200 then
    broken = broken + 1
  end
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local ended = thread:get("broken")
    if ended and ended > 0 then
      io.stderr:write(string.format("refresh chains ended by a refusal: %d\n", ended))
    end
  end
end
