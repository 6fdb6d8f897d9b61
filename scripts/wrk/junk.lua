-- Requests anyone can send without a valid token, for the junk flood of scripts/load.sh.
-- The first argument is the kind:
--   refresh, logout  a well-formed refresh token that was never issued, new each request
--   login            a username that does not exist (costs a dummy argon2 verify)
--   signup           the taken username given as the second argument (costs a hash, 409)
--   revocations      the revocation feed with a wrong token
local kind, taken

-- base64url; the 43rd character of 32 bytes carries 4 bits, so only these are canonical.
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local last = "AEIMQUYcgkosw048"

local function pick(chars)
  local i = math.random(#chars)
  return chars:sub(i, i)
end

local function never_issued()
  local parts = {}
  for i = 1, 42 do parts[i] = pick(alphabet) end
  return "tgr_" .. table.concat(parts) .. pick(last)
end

function init(args)
  kind, taken = args[1], args[2]
  math.randomseed(os.time())
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  if kind == "refresh" or kind == "logout" then
    return wrk.format("POST", "/auth/" .. kind, nil, '{"refresh_token":"' .. never_issued() .. '"}')
  elseif kind == "login" then
    local body = '{"username":"nobody' .. math.random(1000000000) .. '","password":"a wrong password"}'
    return wrk.format("POST", "/auth/login", nil, body)
  elseif kind == "signup" then
    return wrk.format("POST", "/auth/signup", nil, '{"username":"' .. taken .. '","password":"long enough password"}')
  elseif kind == "revocations" then
    return wrk.format("GET", "/auth/revocations?since=0", { ["Authorization"] = "Bearer not-the-feed-token" })
  end
  error("unknown junk kind " .. tostring(kind))
end
