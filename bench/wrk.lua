-- Request generator for every benchmark scenario (wrk 4.x). Used by bench/bench.py as
--   wrk -t T -c C -d D --latency -s bench/wrk.lua URL -- MODE NTHREADS ARG...
-- MODE and its arguments:
--   view    IDS_FILE PATH_PREFIX          GET PATH_PREFIX/<random id>
--   list    PRE POST LO HI [TOKENS_FILE]  GET PRE<random int in [LO,HI]>POST (optionally with
--                                          a random user's token in Authorization)
--   update  IDS_FILE PATH_PREFIX          PATCH PATH_PREFIX/<random id> {"views+":1}
--   create  PATH USERS_FILE TAG OUT_FILE  POST a new ~500-byte post with id TAG<thread><counter>
--                                          (one of 256 bodies built per thread at start);
--                                          ids of 2xx responses are written to OUT_FILE at the end
--   delete  IDS_FILE PATH_PREFIX FROM TO  DELETE each id of lines [FROM,TO) once (split
--                                          between threads); the run ends (SIGINT to wrk's own
--                                          process, which wrk handles as "stop now and report")
--                                          as soon as one thread has used up its share
--   auth    PATH USERS_FILE               POST {identity,password} of a random user
--   get     PATH                          GET PATH, the same request every time (file serving)
--   seed    ROWS_FILE PATH                POST every JSON line of ROWS_FILE once (run it with
--                                          one thread); the run ends when all are answered
-- Every mode prints one line "RESULT {json}" from done() with counts and latency (microseconds).

local ffi = require("ffi")
ffi.cdef [[int kill(int pid, int sig); int getpid(void);]]

local threads = {}
local mode, a = nil, {}
local items, users, tokens = {}, {}, {}
local fixed = nil -- the one request of the get mode
local pos, last, counter, verified = 1, 0, 0, false
ok_ids = {} -- global: read by done() through thread:get
local json_hdr = { ["Content-Type"] = "application/json" }
local templates = {} -- create mode: {before id, after id} pairs
local POOL = 256

-- BENCH_ADDRS=host:port,host:port,... spreads the threads over several servers (thread i
-- connects to entry ((i - 1) mod n) + 1): the nodes of one Basalt cluster.
local spread = os.getenv("BENCH_ADDRS")

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
  if spread and spread ~= "" then
    local list = {}
    for hp in spread:gmatch("[^,]+") do list[#list + 1] = hp end
    local host, port = list[(#threads - 1) % #list + 1]:match("^(.*):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
end

local function lines(path)
  local t = {}
  for l in io.lines(path) do if l ~= "" then t[#t + 1] = l end end
  return t
end

-- Slice [from, to) of a pool shared between nthreads threads, this thread's part.
local function share(pool, from, to, nthreads)
  local n = to - from
  local per = math.floor(n / nthreads)
  local lo = from + (tid - 1) * per
  local hi = lo + per
  if tid == nthreads then hi = to end
  local t = {}
  for i = lo + 1, hi do t[#t + 1] = pool[i] end
  return t
end

local words = { "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing",
  "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore",
  "magna", "aliqua", "enim", "ad", "minim", "veniam", "quis", "nostrud", "exercitation" }

local function body_text(n)
  local t, len = {}, 0
  while len < n do
    local w = words[math.random(#words)]
    t[#t + 1] = w
    len = len + #w + 1
  end
  return table.concat(t, " ")
end

function init(args)
  mode = args[1]
  for i = 2, #args do a[#a + 1] = args[i] end
  local nthreads = tonumber(a[1])
  math.randomseed(1000 + tid)
  if mode == "view" or mode == "update" then
    items = lines(a[2])
  elseif mode == "list" then
    if a[6] and a[6] ~= "" then tokens = lines(a[6]) end
  elseif mode == "create" then
    users = lines(a[3])
    out_file = a[5]
    -- POOL request templates per thread, built once: every create sends one of them with
    -- its own id spliced in (ids have a fixed length, so Content-Length stays right).
    -- Building a fresh random body per request cost the client half as much CPU as a fast
    -- server's create, and wrk shares the 2 cores with the server under test.
    local id_mark = string.rep("@", #a[4] + 12) -- as long as TAG .. thread(2) .. counter(10)
    for k = 1, POOL do
      local body = string.format(
        '{"id":"%s","title":"created post %d","body":"%s","views":%d,"published":%s,"author":"%s"}',
        id_mark, k, body_text(400), math.random(0, 9999), math.random(2) == 1 and "true" or "false",
        users[math.random(#users)]:match("^([^,]+)"))
      local req = wrk.format("POST", a[2], json_hdr, body)
      local at = req:find(id_mark, 1, true)
      templates[k] = { req:sub(1, at - 1), req:sub(at + #id_mark) }
    end
    response = function(status, headers, body)
      if status >= 200 and status < 300 then
        local id = body:match('"id":"(%w+)"')
        if id then ok_ids[#ok_ids + 1] = id end
      end
    end
  elseif mode == "delete" then
    items = share(lines(a[2]), tonumber(a[4]), tonumber(a[5]), nthreads)
  elseif mode == "auth" then
    users = lines(a[3])
  elseif mode == "get" then
    fixed = wrk.format("GET", a[2])
  elseif mode == "seed" then
    items = lines(a[2])
    seed_ok, seed_bad = 0, 0
    response = function(status, headers, body)
      if status >= 200 and status < 300 and body:find('"id":"', 1, true) then
        seed_ok = seed_ok + 1
      elseif status ~= 404 then
        seed_bad = seed_bad + 1
      end
      if seed_ok + seed_bad == #items then ffi.C.kill(ffi.C.getpid(), 2) end
    end
  end
end

-- wrk calls request() once on thread 1 before the run to validate the script; that
-- request is never sent, so count-bounded modes must not consume an item for it.
local function probe()
  if tid == 1 and not verified then
    verified = true
    return true
  end
  return false
end

local function next_item()
  if pos > #items then
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), 2)
    return nil
  end
  local it = items[pos]
  pos = pos + 1
  return it
end

function request()
  if mode == "get" then
    return fixed
  elseif mode == "view" then
    return wrk.format("GET", a[3] .. "/" .. items[math.random(#items)])
  elseif mode == "list" then
    local hdr = nil
    if #tokens > 0 then hdr = { ["Authorization"] = tokens[math.random(#tokens)] } end
    return wrk.format("GET", a[2] .. math.random(tonumber(a[4]), tonumber(a[5])) .. a[3], hdr)
  elseif mode == "update" then
    return wrk.format("PATCH", a[3] .. "/" .. items[math.random(#items)], json_hdr, '{"views+":1}')
  elseif mode == "create" then
    counter = counter + 1
    local t = templates[counter % POOL + 1]
    return t[1] .. string.format("%s%02d%010d", a[4], tid, counter) .. t[2]
  elseif mode == "delete" then
    if probe() then return wrk.format("GET", "/api/health") end
    local it = next_item()
    if it == nil then return wrk.format("GET", "/api/health") end
    return wrk.format("DELETE", a[3] .. "/" .. it)
  elseif mode == "seed" then
    -- once every row is sent, idle connections ask for a missing record (404) until the
    -- last answers arrive
    if probe() or pos > #items then return wrk.format("GET", a[3] .. "/missing") end
    pos = pos + 1
    return wrk.format("POST", a[3], json_hdr, items[pos - 1])
  elseif mode == "auth" then
    local u = users[math.random(#users)]
    local email, pass = u:match("^[^,]+,([^,]+),([^,]+)$")
    return wrk.format("POST", a[2], json_hdr,
      string.format('{"identity":"%s","password":"%s"}', email, pass))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local created = 0
  -- done() runs in wrk's main Lua state, where init() never ran: read the threads' globals.
  local out_file = threads[1]:get("out_file")
  if out_file then
    local f = assert(io.open(out_file, "w"))
    for _, t in ipairs(threads) do
      local ids = t:get("ok_ids")
      for _, id in ipairs(ids) do f:write(id, "\n") created = created + 1 end
    end
    f:close()
  end
  local seeded, seed_failed = 0, 0
  for _, t in ipairs(threads) do
    seeded = seeded + (t:get("seed_ok") or 0)
    seed_failed = seed_failed + (t:get("seed_bad") or 0)
  end
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f,"created":%d,'
    .. '"seeded":%d,"seed_failed":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, created, seeded, seed_failed))
end
