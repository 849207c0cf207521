-- POST a new thought as the token's user (Authorization comes from wrk -H).
local counter = 0

local headers

function init(args)
  math.randomseed(os.time() * 1000 + thread_number)
  headers = json_headers()  -- common.lua
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"text": "Benchmark thought %d from thread %d: measuring how fast we write, %d."}',
    counter, thread_number, math.random(1, 1000000))
  return wrk.format("POST", "/api/me/thoughts/", headers, body)
end
