-- POST /auth/password/forgot, for the forgot flood of scripts/load.sh. The first argument
-- is a file of the real users' addresses (one a line), the second the share of requests
-- that name one of them (0 to 1, default 0.5): those cycle over the file, so that mails
-- are queued and sent (one per account per MAIL_COOLDOWN_SECS); every other request
-- names an address no account has, a new one each request.
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
end

local known = {}
local next_known = 0
local share, owed = 0.5, 0
local sent = 0

function init(args)
  for address in io.lines(args[1]) do known[#known + 1] = address end
  share = tonumber(args[2] or "0.5")
  math.randomseed(os.time() * 1000 + (index or 1))
  next_known = math.random(#known) - 1
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local address
  owed = owed + share
  if owed >= 1 then
    owed = owed - 1
    next_known = next_known % #known + 1
    address = known[next_known]
  else
    sent = sent + 1
    address = string.format("nobody%dx%dt%d@example.com", math.random(1000000000), sent, index or 1)
  end
  return wrk.format(nil, "/auth/password/forgot", nil, '{"email":"' .. address .. '"}')
end
