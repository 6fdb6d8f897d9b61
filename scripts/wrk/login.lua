-- POST /auth/login, cycling over the users named in the file given as the argument
-- (one "username password" per line).
local users = {}
local next_user = 1

function init(args)
  for line in io.lines(args[1]) do
    local name, password = line:match("^(%S+) (.+)$")
    users[#users + 1] = string.format('{"username":"%s","password":"%s"}', name, password)
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body = users[next_user]
  next_user = next_user % #users + 1
  return wrk.format(nil, "/auth/login", nil, body)
end
