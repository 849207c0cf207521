-- POST /api/login/ as a random one of the BENCH_AUTHORS generated accounts (user0000, ...).
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
  return wrk.format("POST", "/api/login/", headers, body)
end
