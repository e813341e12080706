-- nkreplay_capture: record a Nakama Lua match handler's calls into the server log, for nakama-replay.
--
-- Put this file and nkreplay_capture_rec.lua in Nakama's modules folder and wrap the match module's table:
--
--   local capture = require("nkreplay_capture")   -- first line: patches nk, math.random, os.* in this VM
--   local M = {}
--   ... the handler as before ...
--   return capture.wrap(M, { module = "arena", snapshot_every = 100 })
--
-- (`return require("nkreplay_capture").wrap(M)` on the last line alone also works, unless the module
-- keeps local aliases such as `local now = nk.time` taken before the capture module is loaded.)
--
-- Every callback call becomes one compact JSON line written with nk.logger_info, tagged
-- `nkreplay:1 {...}` with the match id (`m`), a sequence number (`s`), the kind (`k`) and the tick (`t`):
-- its inputs, what it did (join verdict, tick rate and label, broadcasts, kicks, label updates, signal
-- reply, a nil state, the error it raised) and the nondeterministic values it consumed (`nd`: nk.time,
-- nk.uuid_v4, math.random, os.time, os.clock, os.date, nk.storage_read, nk.http_request), in order.
-- Records longer than `max_line` bytes are split into `nkreplay:1 P seq/i/n ...` parts (log shippers cut
-- long lines). `nakama-replay ingest LOG -o DIR` turns the lines back into one recording per match.
--
-- The wrapped handler sees and returns exactly what it would unwrapped; an error it raises is logged and
-- raised again with the same value (Nakama's crash line then shows this module in the traceback, the
-- error text is unchanged). A failure inside the capture itself is logged, never raised.
--
-- Options (second argument of wrap, all optional):
--   module          name written into the recording (default "")
--   snapshot_every  log the state (nk.json_encode) with every loop whose tick is a multiple (0 = never;
--                   states must be JSON-encodable: no NaN, no cycles)
--   sample          fraction of matches to record (default 1), drawn when Nakama loads the module into a
--                   match's Lua VM (once per match): a match outside the sample gets the handler itself, its
--                   callbacks called directly (only nk.time, nk.uuid_v4, math.random, os.* and the other
--                   patched sources pass through a one-test wrapper)
--   redact          list of table keys whose values are replaced by "[redacted]" in params, metadata,
--                   session vars, snapshots and storage reads
--   redact_op_codes list of op codes whose message and broadcast data are not written
--   max_line        longest record line in bytes before it is split (default 6000)
--   mode            "full" (default: every call its own record, with outcomes) or "lean": what a production
--                   server can afford. Lean records match_loop calls by their inputs and nondeterministic
--                   values only, several ticks per `k = "loops"` record (`t` first tick, `n` ticks, `ps` the
--                   senders, `x` the ticks that had messages, nondeterministic values or an error, each
--                   `{"i": offset, "ms": [[sender index in ps, ...]], ...}`; the other ticks were empty). A tick with something is written at most `flush_seconds`
--                   later, and at once when the loop raises (so Nakama's crash line follows the record of its
--                   tick) or ends the match; empty ticks are only counted, written with the next record.
--                   Other callbacks are recorded as in full mode (pending loops first). A process killed
--                   outright loses at most the last `flush_seconds` of inputs.
--   flush_seconds   lean: longest time a tick's inputs wait in memory (default 1)
--   outcomes        lean: also record each loop's outcome (broadcasts, kicks, label updates; default false);
--                   snapshot_every needs it in lean mode
--
-- nkreplay_capture_rec.lua holds the recording itself; this module loads it (`require`) when it is needed.
-- Nakama gives every match a Lua VM of its own and loads the modules the match requires into it, and every
-- object a match VM holds costs its ticks (issue 19), so this module is kept small: the patches of the
-- nondeterministic sources and, in lean mode, match_init's record and the quiet loops (below). An idle lean
-- match never loads nkreplay_capture_rec; the first call that records anything else does (a compile of that
-- module in the match's VM, once). The full mode and lean with outcomes or `redact` load it at once.
local nk = require("nakama")

local C = { VERSION = 1 }
local REC = "nkreplay_capture_rec"
local TAG = "nkreplay:1 "
local raw_type, raw_pairs, raw_select, raw_unpack, raw_pcall, raw_error, raw_tostring =
  type, pairs, select, unpack, pcall, error, tostring

local function pack(...)
  return { n = raw_select("#", ...), ... }
end

-- what nkreplay_capture_rec takes over when it is loaded after match_init: the match id, the next record's
-- sequence number, the lean flush interval in ticks
local S = {}
C._S = S

-- nkreplay_capture_rec's consumed(source, value, tick) once it is loaded; `recording`: a lean match whose
-- match_init this module recorded (a value consumed later loads nkreplay_capture_rec); `init_nd`: the
-- values consumed by that match_init
local record_value, recording, init_nd = nil, false, nil
-- lean without outcomes: nothing waits in memory, so a loop without messages runs unobserved (a tail call to
-- the handler's match_loop, its tick remembered for the values it consumes); ingest infers such loops from
-- the ticks of the records around them. Set by nkreplay_capture_rec too (C._quiet)
local quiet_ok, quiet_tick = false, 0
local rec_callbacks -- nkreplay_capture_rec's callbacks for the wrapped handler, once it is loaded
local wrapped -- the handler and the options of C.wrap (one match per VM)

function C._hook(f) record_value = f end
function C._quiet(v) quiet_ok = v end

-- the recorded callbacks (nkreplay_capture_rec loaded, taking over the match's state from S); the handler's
-- own if it cannot be loaded (not deployed?): logged, and the match goes on unrecorded
local function recorder()
  if rec_callbacks == nil then
    local ok, rec = raw_pcall(require, REC)
    if ok then ok, rec = raw_pcall(rec.wrap, wrapped[1], wrapped[2], true) end
    if not ok then
      raw_pcall(nk.logger_error, "nkreplay_capture: cannot load " .. REC .. " (deploy it beside nkreplay_capture.lua),"
        .. " this match is no longer recorded: " .. raw_tostring(rec))
      recording, rec = false, wrapped[1]
    end
    rec_callbacks = rec
  end
  return rec_callbacks
end

local function consumed(source, value)
  if init_nd ~= nil then
    init_nd[#init_nd + 1] = { source, value }
    return
  end
  local f = record_value
  if f == nil then
    if not recording then return end
    recorder()
    f = record_value
    if f == nil then return end
  end
  f(source, value, quiet_tick)
end

-- -- nondeterministic sources: wrapped once per VM, pass-through outside recorded calls -------------------
-- `max_args`: recorded only when called with at most that many arguments (nk.time(), os.time(), os.date(f))
local function patch(tbl, name, source, max_args)
  local original = tbl[name]
  if raw_type(original) ~= "function" then return end
  raw_pcall(function() -- read-only globals: leave the function alone
    tbl[name] = function(...)
      local v = original(...)
      if max_args == nil or raw_select("#", ...) <= max_args then consumed(source, v) end
      return v
    end
  end)
end

if not rawget(nk, "__nkreplay_capture") then
  raw_pcall(function() rawset(nk, "__nkreplay_capture", true) end)
  patch(nk, "time", "time", 0)
  patch(nk, "uuid_v4", "uuid")
  patch(nk, "storage_read", "storage_read")
  local http = nk.http_request
  if raw_type(http) == "function" then
    raw_pcall(function()
      nk.http_request = function(...)
        local code, headers, body = http(...)
        consumed("http", { code = code, headers = headers, body = body })
        return code, headers, body
      end
    end)
  end
  patch(math, "random", "random")
  if os ~= nil then
    patch(os, "time", "os_time", 0)
    patch(os, "clock", "os_clock")
    patch(os, "date", "os_date", 1)
  end
end

-- whether this match is recorded: drawn when Nakama loads the module into the match's own Lua VM (once per
-- match, before it has an id), so a match outside the sample runs the handler itself
local function drawn(fraction)
  if fraction >= 1 then return true end
  if fraction <= 0 then return false end
  return tonumber(string.sub(nk.uuid_v4(), 1, 8), 16) / 4294967296 < fraction
end

-- lean: match_init's record (as nkreplay_capture_rec writes it), the handler's results passed through
local function init_record(o, context, params, r)
  local ok, state, rate, label = r[1], r[2], r[3], r[4]
  local record = {
    m = context.match_id, s = 0, k = "init", t = 0, p = params, o = {}, nd = init_nd[1] ~= nil and init_nd or nil,
    h = { v = C.VERSION, mod = o.module or "", node = context.node, snap = 0, red = o.redact or {},
          redop = o.redact_op_codes or {}, mode = "lean" },
  }
  init_nd = nil
  local ok_c, err = raw_pcall(function()
    if not ok then
      record.e = raw_type(state) == "string" and state or raw_tostring(state)
    else
      local flush = math.floor((raw_type(rate) == "number" and rate or 0) * (o.flush_seconds or 1))
      if flush < 1 then flush = 1 end
      record.o.tr, record.o.l, record.h.flush, record.h.quiet = rate, label, flush, true
      if state == nil then record.o.st = true end
      S.flush_ticks = flush
    end
    S.match_id, S.seq = context.match_id, 1
    local ok_j, text = raw_pcall(nk.json_encode, record)
    if not ok_j then
      text = nk.json_encode({ m = record.m, s = 0, k = "init", t = 0, capture_error = raw_tostring(text) })
    end
    if #text <= (o.max_line or 6000) then
      nk.logger_info(TAG .. text)
    else
      recorder()
      require(REC).write_line(text, 0) -- long params: written in parts
    end
  end)
  if not ok_c then raw_pcall(nk.logger_warn, "nkreplay_capture: could not record a init call: " .. raw_tostring(err)) end
  if not ok then raw_error(state, 0) end
  recording, quiet_ok = true, true
  return raw_unpack(r, 2, r.n)
end

function C.wrap(M, options)
  local o = options or {}
  local mode = o.mode or "full"
  if mode ~= "full" and mode ~= "lean" then
    raw_error("nkreplay_capture: mode must be \"full\" or \"lean\", got " .. raw_tostring(mode), 2)
  end
  local quiet = mode == "lean" and o.outcomes ~= true
  if quiet and (o.snapshot_every or 0) > 0 then
    raw_pcall(nk.logger_warn, "nkreplay_capture: snapshot_every needs outcomes = true in lean mode: no snapshots")
  end
  if not drawn(o.sample or 1) then return M end
  wrapped = { M, options }
  if not quiet then return require(REC).wrap(M, options) end
  -- lean without outcomes: match_init recorded here (unless keys are redacted), the quiet loops run here,
  -- every other call recorded by nkreplay_capture_rec
  local L = {}
  for k, v in raw_pairs(M) do L[k] = v end
  local init = M.match_init
  local redacting = raw_type(o.redact) == "table" and next(o.redact) ~= nil
  L.match_init = function(context, params, ...)
    if redacting then return recorder().match_init(context, params, ...) end
    init_nd = {}
    return init_record(o, context, params, pack(raw_pcall(init, context, params, ...)))
  end
  for _, name in ipairs({ "match_join_attempt", "match_join", "match_leave", "match_terminate", "match_signal" }) do
    L[name] = function(...) return recorder()[name](...) end
  end
  local loop = M.match_loop
  -- Nakama passes five arguments
  L.match_loop = function(context, dispatcher, tick, state, messages)
    if quiet_ok and messages[1] == nil then
      quiet_tick = tick
      return loop(context, dispatcher, tick, state, messages)
    end
    return (rec_callbacks or recorder()).match_loop(context, dispatcher, tick, state, messages)
  end
  return L
end

return C
