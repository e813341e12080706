-- nkreplay_capture: record a Nakama Lua match handler's calls into the server log, for nakama-replay.
--
-- Put this file in Nakama's modules folder and wrap the match module's table:
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
--   sample          fraction of matches to record, chosen from the match id (default 1)
--   redact          list of table keys whose values are replaced by "[redacted]" in params, metadata,
--                   session vars, snapshots and storage reads
--   redact_op_codes list of op codes whose message and broadcast data are not written
--   max_line        longest record line in bytes before it is split (default 6000)
local nk = require("nakama")

local C = { VERSION = 1 }
local TAG = "nkreplay:1 "

local raw_type, raw_pairs, raw_ipairs, raw_select, raw_unpack, raw_pcall, raw_error, raw_tostring =
  type, pairs, ipairs, select, unpack, pcall, error, tostring
local str_sub, str_byte, floor = string.sub, string.byte, math.floor

local function pack(...)
  return { n = raw_select("#", ...), ... }
end

-- the call being recorded (nil outside wrapped callbacks); one match per Lua VM in Nakama
local active = nil

local function consumed(source, value)
  if active ~= nil then
    local nd = active.nd
    nd[#nd + 1] = { source, value }
  end
end

-- -- nondeterministic sources: wrapped once per VM, pass-through outside recorded calls -------------------
local function patch(tbl, name, make)
  local original = tbl[name]
  if raw_type(original) ~= "function" then return end
  raw_pcall(function() tbl[name] = make(original) end) -- read-only globals: leave the function alone
end

if not rawget(nk, "__nkreplay_capture") then
  raw_pcall(function() rawset(nk, "__nkreplay_capture", true) end)
  patch(nk, "time", function(original)
    return function(...)
      local v = original(...)
      if raw_select("#", ...) == 0 then consumed("time", v) end
      return v
    end
  end)
  patch(nk, "uuid_v4", function(original)
    return function(...)
      local v = original(...)
      consumed("uuid", v)
      return v
    end
  end)
  patch(nk, "storage_read", function(original)
    return function(...)
      local v = original(...)
      if active ~= nil then consumed("storage_read", C._redacted(v)) end
      return v
    end
  end)
  patch(nk, "http_request", function(original)
    return function(...)
      local code, headers, body = original(...)
      consumed("http", { code = code, headers = headers, body = body })
      return code, headers, body
    end
  end)
  patch(math, "random", function(original)
    return function(...)
      local v = original(...)
      consumed("random", v)
      return v
    end
  end)
  if os ~= nil then
    patch(os, "time", function(original)
      return function(...)
        local v = original(...)
        if raw_select("#", ...) == 0 then consumed("os_time", v) end
        return v
      end
    end)
    patch(os, "clock", function(original)
      return function(...)
        local v = original(...)
        consumed("os_clock", v)
        return v
      end
    end)
    patch(os, "date", function(original)
      return function(...)
        local v = original(...)
        if raw_select("#", ...) < 2 then consumed("os_date", v) end
        return v
      end
    end)
  end
end

-- -- options ----------------------------------------------------------------------------------------------
local opts = { module = "", snapshot_every = 0, sample = 1, redact = {}, redact_op_codes = {}, max_line = 6000 }
local redact_keys, redact_ops = {}, {}

local function set_options(o)
  o = o or {}
  for k, v in raw_pairs(o) do opts[k] = v end
  redact_keys, redact_ops = {}, {}
  for _, k in raw_ipairs(opts.redact or {}) do redact_keys[k] = true end
  for _, op in raw_ipairs(opts.redact_op_codes or {}) do redact_ops[op] = true end
end

-- a copy of v with redacted keys replaced, or v itself when nothing is redacted
function C._redacted(v, depth)
  if next(redact_keys) == nil or raw_type(v) ~= "table" then return v end
  depth = depth or 0
  if depth > 64 then return v end
  local out = {}
  for k, x in raw_pairs(v) do
    if redact_keys[k] then out[k] = "[redacted]" else out[k] = C._redacted(x, depth + 1) end
  end
  return out
end

local function b64(data)
  if data == nil then return nil end
  if data == "" then return "" end
  return nk.base64_encode(data)
end

local function presence4(p)
  return { p.user_id, p.session_id, p.username, p.node }
end

local function presence5(p)
  return { p.user_id, p.session_id, p.username, p.node, p.reason or 0 }
end

-- -- records ----------------------------------------------------------------------------------------------
local match_id, seq, enabled = nil, 0, true

local function emit(record)
  record.m = match_id
  record.s = seq
  seq = seq + 1
  local ok, text = raw_pcall(nk.json_encode, record)
  if not ok and record.o ~= nil and record.o.ss ~= nil then
    -- the state does not encode (NaN, a cycle...): keep the record, drop the snapshot
    record.o.ss, record.o.ss_error = nil, raw_tostring(text)
    ok, text = raw_pcall(nk.json_encode, record)
  end
  if not ok then
    text = nk.json_encode({ m = match_id, s = record.s, k = record.k, t = record.t, capture_error = raw_tostring(text) })
  end
  local limit = opts.max_line or 6000
  if #text <= limit then
    nk.logger_info(TAG .. text)
    return
  end
  local parts, i = {}, 1
  while i <= #text do
    local j = i + limit - 1
    if j < #text then
      -- never cut a UTF-8 sequence: the log encoder would replace the broken bytes
      while j > i and (str_byte(text, j + 1) or 0) >= 0x80 and (str_byte(text, j + 1) or 0) < 0xC0 do j = j - 1 end
    end
    parts[#parts + 1] = str_sub(text, i, j)
    i = j + 1
  end
  for n, part in raw_ipairs(parts) do
    nk.logger_info(TAG .. "P " .. record.s .. "/" .. n .. "/" .. #parts .. " " .. part)
  end
end

local function proxy_dispatcher(real)
  local function record_broadcast(deferred, op, data, presences, sender, reliable)
    if active == nil then return end
    local targets = nil
    if presences ~= nil then
      targets = {}
      for _, p in raw_pairs(presences) do targets[#targets + 1] = { p.session_id, p.node } end
    end
    local d = redact_ops[op] and false or b64(data)
    local s = sender and { sender.user_id, sender.session_id, sender.username } or nil
    local b = active.out.b
    b[#b + 1] = { op, d, targets or false, s or false, reliable ~= false, deferred }
  end
  local proxy = {}
  proxy.broadcast_message = function(...)
    real.broadcast_message(...)
    record_broadcast(false, ...)
  end
  proxy.broadcast_message_deferred = function(...)
    real.broadcast_message_deferred(...)
    record_broadcast(true, ...)
  end
  proxy.match_kick = function(presences, ...)
    real.match_kick(presences, ...)
    if active ~= nil and presences ~= nil then
      local kk = active.out.kk
      for _, p in raw_pairs(presences) do kk[#kk + 1] = presence5(p) end
    end
  end
  proxy.match_label_update = function(label, ...)
    real.match_label_update(label, ...)
    if active ~= nil then
      local lu = active.out.lu
      lu[#lu + 1] = label or ""
    end
  end
  for k, v in raw_pairs(real) do
    if proxy[k] == nil then proxy[k] = v end
  end
  return proxy
end

local proxies = setmetatable({}, { __mode = "k" })
local function dispatcher_for(real)
  local p = proxies[real]
  if p == nil then
    p = proxy_dispatcher(real)
    proxies[real] = p
  end
  return p
end

local function sampled(id)
  local fraction = opts.sample or 1
  if fraction >= 1 then return true end
  if fraction <= 0 then return false end
  local h = tonumber(str_sub(nk.md5_hash(id), 1, 8), 16)
  return h / 4294967296 < fraction
end

-- run a callback with recording: `record` holds the inputs; returns exactly what the callback returned
local function run(record, fn, ...)
  active = { nd = {}, out = { b = {}, kk = {}, lu = {} } }
  local r = pack(raw_pcall(fn, ...))
  local call = active
  active = nil
  local ok_capture, capture_err = raw_pcall(function()
    local out = call.out
    local o = record.o or {}
    if #out.b > 0 then o.b = out.b end
    if #out.kk > 0 then o.kk = out.kk end
    if #out.lu > 0 then o.lu = out.lu end
    record.o = o
    if #call.nd > 0 then record.nd = call.nd end
    if not r[1] then
      record.e = raw_type(r[2]) == "string" and r[2] or raw_tostring(r[2])
    elseif record.finish ~= nil then
      record.finish(record, r)
    end
    record.finish = nil
    emit(record)
  end)
  if not ok_capture then
    raw_pcall(nk.logger_warn, "nkreplay_capture: could not record a " .. raw_tostring(record.k) .. " call: " .. raw_tostring(capture_err))
  end
  if not r[1] then raw_error(r[2], 0) end
  return raw_unpack(r, 2, r.n)
end

local function state_result(record, r)
  if r[2] == nil then record.o.st = true end
end

function C.wrap(M, options)
  set_options(options)
  local W = {}
  for k, v in raw_pairs(M) do W[k] = v end

  W.match_init = function(context, params, ...)
    match_id = context.match_id
    seq = 0
    enabled = sampled(raw_tostring(match_id))
    if not enabled then return M.match_init(context, params, ...) end
    local record = {
      k = "init", t = 0, p = C._redacted(params),
      h = { v = C.VERSION, mod = opts.module or "", node = context.node, snap = opts.snapshot_every or 0,
            red = opts.redact or {}, redop = opts.redact_op_codes or {} },
      finish = function(rec, r)
        rec.o.tr, rec.o.l = r[3], r[4]
        if r[2] == nil then rec.o.st = true end
      end,
    }
    return run(record, M.match_init, context, params, ...)
  end

  W.match_join_attempt = function(context, dispatcher, tick, state, presence, metadata, ...)
    if not enabled then return M.match_join_attempt(context, dispatcher, tick, state, presence, metadata, ...) end
    local record = {
      k = "join_attempt", t = tick, pr = presence4(presence), md = C._redacted(metadata),
      vars = C._redacted(context.vars),
      finish = function(rec, r)
        -- Nakama reads the verdict from the top of the stack: (state, accept[, reason])
        local n = r.n - 1
        if n >= 3 then rec.o.a, rec.o.r = r[3], r[4] elseif n == 2 then rec.o.a = r[3] end
        if r[2] == nil then rec.o.st = true end
      end,
    }
    return run(record, M.match_join_attempt, context, dispatcher_for(dispatcher), tick, state, presence, metadata, ...)
  end

  W.match_join = function(context, dispatcher, tick, state, presences, ...)
    if not enabled then return M.match_join(context, dispatcher, tick, state, presences, ...) end
    local ps = {}
    for i, p in raw_ipairs(presences) do ps[i] = presence5(p) end
    local record = { k = "join", t = tick, ps = ps, finish = state_result }
    return run(record, M.match_join, context, dispatcher_for(dispatcher), tick, state, presences, ...)
  end

  W.match_leave = function(context, dispatcher, tick, state, presences, ...)
    if not enabled then return M.match_leave(context, dispatcher, tick, state, presences, ...) end
    local ps = {}
    for i, p in raw_ipairs(presences) do ps[i] = presence5(p) end
    local record = { k = "leave", t = tick, ps = ps, finish = state_result }
    return run(record, M.match_leave, context, dispatcher_for(dispatcher), tick, state, presences, ...)
  end

  W.match_loop = function(context, dispatcher, tick, state, messages, ...)
    if not enabled then return M.match_loop(context, dispatcher, tick, state, messages, ...) end
    local senders, index, ms = {}, {}, {}
    for i, m in raw_ipairs(messages) do
      local s = m.sender
      local key = s.session_id .. "\0" .. s.node
      local idx = index[key]
      if idx == nil then
        senders[#senders + 1] = presence4(s)
        idx = #senders
        index[key] = idx
      end
      local data = m.data
      if redact_ops[m.op_code] then data = false else data = b64(data) end
      ms[i] = { idx, m.op_code, data, m.reliable, m.receive_time_ms }
    end
    local record = {
      k = "loop", t = tick, ps = senders, ms = ms,
      finish = function(rec, r)
        if r[2] == nil then
          rec.o.st = true
        elseif (opts.snapshot_every or 0) > 0 and tick % opts.snapshot_every == 0 then
          rec.o.ss = C._redacted(r[2]) -- encoded with the record (emit drops it if it cannot be encoded)
        end
      end,
    }
    return run(record, M.match_loop, context, dispatcher_for(dispatcher), tick, state, messages, ...)
  end

  W.match_terminate = function(context, dispatcher, tick, state, grace_seconds, ...)
    if not enabled then return M.match_terminate(context, dispatcher, tick, state, grace_seconds, ...) end
    local record = { k = "terminate", t = tick, g = grace_seconds, finish = state_result }
    return run(record, M.match_terminate, context, dispatcher_for(dispatcher), tick, state, grace_seconds, ...)
  end

  W.match_signal = function(context, dispatcher, tick, state, data, ...)
    if not enabled then return M.match_signal(context, dispatcher, tick, state, data, ...) end
    local record = {
      k = "signal", t = tick, d = data,
      finish = function(rec, r)
        rec.o.rp = r[3]
        if r[2] == nil then rec.o.st = true end
      end,
    }
    return run(record, M.match_signal, context, dispatcher_for(dispatcher), tick, state, data, ...)
  end

  return W
end

return C
