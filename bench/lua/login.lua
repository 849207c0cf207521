-- POST /api/login/ as a random one of the BENCH_AUTHORS generated accounts (user0000, ...),
-- each request from a random client address (X-Forwarded-For, trusted from loopback as from the
-- gateway): real logins come from many clients, and one address may have only
-- PASSWORD_CHECKS_PER_CLIENT password checks in progress.
local authors = tonumber(os.getenv("BENCH_AUTHORS"))
local password = os.getenv("BENCH_PASSWORD")

local headers

function init(args)
  math.randomseed(os.time() * 1000 + thread_number)
  headers = json_headers()  -- common.lua
end

function request()
  local body = string.format('{"username": "user%04d", "password": "%s"}',
    math.random(0, authors - 1), password)
  headers["X-Forwarded-For"] = string.format("198.51.100.%d", math.random(1, 254))
  return wrk.format("POST", "/api/login/", headers, body)
end
