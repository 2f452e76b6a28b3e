-- wrk script of benches/feed-load.sh.
--
-- FEED_TOKENS=FILE: each line is "TOKEN" or "TOKEN CURSOR"; requests rotate
-- through the lines (each thread from its own offset), sending
-- `Authorization: Bearer TOKEN` and, when a cursor is given, `?cursor=CURSOR`
-- (page 2). Without FEED_TOKENS the request is wrk's static one (for /healthz).
-- done() (benches/wrk-result.lua) prints one RESULT line for the script to parse.

local lines = {}
local path = os.getenv("FEED_TOKENS")
local counter = 0
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  if path == nil or path == "" then
    return
  end
  for line in io.lines(path) do
    local token, cursor = line:match("^(%S+)%s*(%S*)$")
    if token then
      lines[#lines + 1] = { token = token, cursor = cursor }
    end
  end
  counter = (id or 0) * 997
end

local function feed_request()
  counter = counter + 1
  local entry = lines[(counter % #lines) + 1]
  local target = wrk.path
  if entry.cursor ~= "" then
    target = target .. "?cursor=" .. entry.cursor
  end
  return wrk.format("GET", target, { ["Authorization"] = "Bearer " .. entry.token })
end

if path ~= nil and path ~= "" then
  request = feed_request
end

dofile("benches/wrk-result.lua")
