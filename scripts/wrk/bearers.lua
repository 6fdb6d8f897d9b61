-- GET with another user's bearer token on every request. The file given as the first
-- argument holds one access token per line; requests cycle through all of them.
local tokens = {}
local next_token = 0

function init(args)
  for token in io.lines(args[1]) do tokens[#tokens + 1] = token end
  next_token = math.random(#tokens)
end

function request()
  next_token = next_token % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[next_token] })
end
