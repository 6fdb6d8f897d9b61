-- GET with the bearer token given as the script's argument.
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end
