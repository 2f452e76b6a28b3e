-- wrk script of benches/feed-scale.sh: a mixed stream of requests.
--
-- FEED_REQUESTS=FILE: one request per line, as benches/seed-feed.py
-- population writes them:
--   F TOKEN            GET /v1/feed
--   L TOKEN POST_ID    PUT /v1/posts/POST_ID/like
--   W TOKEN USER_ID    PUT /v1/users/USER_ID/follow
--   P TOKEN MEDIA_ID   POST /v1/posts {"media_id": MEDIA_ID}
-- FEED_KINDS (e.g. "F" or "LWP") keeps only those kinds, so reads and
-- writes can run as two wrk processes side by side and be reported apart.
-- Each thread takes every FEED_THREADS-th line from line FEED_START (so no
-- two threads post the same media), in order; a run should not wrap around.
-- done() (benches/wrk-result.lua) prints one RESULT line.

local lines = {}
local path = os.getenv("FEED_REQUESTS")
local start = tonumber(os.getenv("FEED_START") or "0")
local threads = tonumber(os.getenv("FEED_THREADS") or "1")
local kinds = os.getenv("FEED_KINDS") or "FLWP"
local position = 0
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  local n = 0
  for line in io.lines(path) do
    if n >= start and (n - start) % threads == id then
      local kind, token, arg = line:match("^(%S+) (%S+)%s*(%S*)$")
      if kind and kinds:find(kind, 1, true) then
        lines[#lines + 1] = { kind = kind, token = token, arg = arg }
      end
    end
    n = n + 1
  end
end

function request()
  position = position + 1
  local r = lines[((position - 1) % #lines) + 1]
  local auth = { ["Authorization"] = "Bearer " .. r.token }
  if r.kind == "L" then
    return wrk.format("PUT", "/v1/posts/" .. r.arg .. "/like", auth)
  elseif r.kind == "W" then
    return wrk.format("PUT", "/v1/users/" .. r.arg .. "/follow", auth)
  elseif r.kind == "P" then
    auth["Content-Type"] = "application/json"
    local body = '{"media_id":"' .. r.arg .. '","caption":"lunch #voice"}'
    return wrk.format("POST", "/v1/posts", auth, body)
  end
  return wrk.format("GET", "/v1/feed", auth)
end

dofile("benches/wrk-result.lua")
