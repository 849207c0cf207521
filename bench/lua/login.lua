-- POST /api/login/ as a random one of the BENCH_AUTHORS generated accounts (user0000, ...),
-- each request from a random client address (X-Forwarded-For, trusted from loopback as from the
-- gateway): real logins come from many clients, and one address may have only
-- PASSWORD_CHECKS_PER_CLIENT (2) password checks in progress. Each wrk thread draws from its own
-- /24, so that no address is ever used by more than the thread's own connections (run.py's
-- login scenario: 2 threads, 4 connections); a shared pool let three collide now and then.
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
  headers["X-Forwarded-For"] = string.format("198.51.%d.%d", thread_number, math.random(1, 254))
  return wrk.format("POST", "/api/login/", headers, body)
end
