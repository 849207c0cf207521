-- GET one thought by a random id between BENCH_MIN_ID and BENCH_MAX_ID (all of them exist).
local min_id = tonumber(os.getenv("BENCH_MIN_ID"))
local max_id = tonumber(os.getenv("BENCH_MAX_ID"))

function init(args)
  math.randomseed(os.time() * 1000 + thread_number)
end

function request()
  return wrk.format("GET", "/api/thoughts/" .. math.random(min_id, max_id) .. "/")
end
