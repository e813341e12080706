-- nkreplay_capture_rec: the recording side of nkreplay_capture.lua (deploy both files side by side; match
-- modules require nkreplay_capture only). nkreplay_capture patches the nondeterministic sources and, in lean
-- mode, records match_init and runs the quiet loops itself; it loads this module for everything else (at
-- once in full mode, with outcomes or redaction; in lean mode at the first call that records something after
-- match_init, taking over the match's state from C._S), so an idle lean match's Lua VM never holds it (each
-- match has a VM of its own, and every object in it costs its ticks). Options and record formats: see
-- nkreplay_capture.lua.
local nk = require("nakama")

local C = require("nkreplay_capture")
local S = C._S -- the match's state when nkreplay_capture recorded its match_init
local R = {}
local TAG = "nkreplay:1 "

local raw_type, raw_pairs, raw_ipairs, raw_select, raw_unpack, raw_pcall, raw_error, raw_tostring =
  type, pairs, ipairs, select, unpack, pcall, error, tostring
local str_sub, str_byte, floor = string.sub, string.byte, math.floor

local function pack(...)
  return { n = raw_select("#", ...), ... }
end

-- the call being recorded (nil outside wrapped callbacks); one match per Lua VM in Nakama. In lean mode
-- without outcomes it is quiet_call between callbacks once match_init has run (idle_active): a match VM
-- runs nothing else, so a value consumed between this module's callbacks is a quiet loop's
local active, idle_active = nil, nil

local quiet_value -- lean: a value consumed by a loop that runs unobserved (defined with the lean mode)
local redacted

-- a value a patched source returned (nkreplay_capture calls this; `tick`: the tick of the last quiet loop)
local function consumed(source, value, tick)
  if active ~= nil then
    if source == "storage_read" then value = redacted(value) end
    local nd = active.nd
    if nd == nil then return quiet_value(source, value, tick) end
    nd[#nd + 1] = { source, value }
  end
end
C._hook(consumed)

-- -- options ----------------------------------------------------------------------------------------------
local opts = {
  module = "", snapshot_every = 0, sample = 1, redact = {}, redact_op_codes = {}, max_line = 6000,
  mode = "full", flush_seconds = 1, outcomes = false,
}
local redact_keys, redact_ops = {}, {}

local function set_options(o)
  o = o or {}
  for k, v in raw_pairs(o) do opts[k] = v end
  redact_keys, redact_ops = {}, {}
  for _, k in raw_ipairs(opts.redact or {}) do redact_keys[k] = true end
  for _, op in raw_ipairs(opts.redact_op_codes or {}) do redact_ops[op] = true end
end

-- a copy of v with redacted keys replaced, or v itself when nothing is redacted
function redacted(v, depth)
  if next(redact_keys) == nil or raw_type(v) ~= "table" then return v end
  depth = depth or 0
  if depth > 64 then return v end
  local out = {}
  for k, x in raw_pairs(v) do
    if redact_keys[k] then out[k] = "[redacted]" else out[k] = redacted(x, depth + 1) end
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
local match_id, seq = nil, 0
local write_line

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
  write_line(text, record.s)
end

-- one record's JSON text into the log: one line, or parts of at most max_line bytes
function write_line(text, s)
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
    nk.logger_info(TAG .. "P " .. s .. "/" .. n .. "/" .. #parts .. " " .. part)
  end
end

local function proxy_dispatcher(real)
  local function record_broadcast(deferred, op, data, presences, sender, reliable)
    if active == nil or active.out == nil then return end
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
    if active ~= nil and active.out ~= nil and presences ~= nil then
      local kk = active.out.kk
      for _, p in raw_pairs(presences) do kk[#kk + 1] = presence5(p) end
    end
  end
  proxy.match_label_update = function(label, ...)
    real.match_label_update(label, ...)
    if active ~= nil and active.out ~= nil then
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

-- -- lean mode: match_loop calls batched into "loops" records ------------------------------------------
local str_find, concat = string.find, table.concat
local lean, lean_outcomes, flush_ticks, limit_bytes = false, false, 10, 6000
-- lean without outcomes: a loop with nothing waiting in memory and no messages runs unobserved
-- (nkreplay_capture runs it as a tail call and remembers its tick); ingest infers such loops from the ticks
-- of the records around them. C._quiet tells nkreplay_capture whether nothing waits (quiet loops allowed)
local quiet = false
local quiet_call = {} -- `active` between callbacks (no nd list: consumed() calls quiet_value)
local function set_quiet(v)
  if quiet then C._quiet(v) end
end
-- empty ticks alone are not worth a line: written with the next tick that has something, before any other
-- call, or after this many (ingest takes at most 100,000 per record)
local MAX_EMPTY = 36000
local match_id_text = '""'
-- the pending batch: ticks batch_first .. batch_next - 1 (batch_next -1: none), its entries, their size, and
-- the tick after which it is written
local batch_first, batch_next, batch_bytes, batch, flush_at = 0, -1, 0, {}, 0
-- the batch's senders: their JSON texts (the record's "ps") and presence cache entry -> index (from 1)
local batch_ps, batch_index = {}, {}
-- the batch's messages, kept as scalars and encoded once when the batch is written: `mv` six numbers per
-- message (tick offset, sender index, op code, data length or -1 for no data, reliable, receive time), `md`
-- the data strings (joined and base64-encoded once: the record's "md")
local mv, mv_n, md, md_n = {}, 0, {}, 0
local any_redact_op = false
local lean_nd = {}
local lean_call = { nd = lean_nd } -- `active` during an observed lean loop: only nondeterministic values
local presence_texts = {} -- session id -> { user_id, username, node, JSON text }

-- a string as JSON text (plain ASCII without quotes or escapes is written as it is)
local function json_text(v)
  if not str_find(v, '[%c"\\\128-\255]') then return '"' .. v .. '"' end
  return nk.json_encode(v)
end

-- write the pending batch (if any). In lean mode without outcomes a batch of empty ticks only is not
-- written unless `write_empty` (the match ends): ingest infers the loops between records
local function flush(write_empty)
  if batch_next < 0 then return end
  if batch_next == batch_first or (quiet and not write_empty and batch[1] == nil and mv_n == 0) then
    batch_next, batch_bytes = -1, 0
    set_quiet(true)
    return
  end
  local s = seq
  seq = seq + 1
  local messages = ""
  if mv_n > 0 then
    -- the numbers through nk.json_encode (in Go), the data as one base64 text
    messages = ',"mv":' .. nk.json_encode(mv) .. ',"md":"' .. (md_n > 0 and nk.base64_encode(concat(md, "", 1, md_n)) or "") .. '"'
    mv, mv_n, md, md_n = {}, 0, {}, 0
  end
  local text = '{"m":' .. match_id_text .. ',"s":' .. s .. ',"k":"loops","t":' .. floor(batch_first)
    .. ',"n":' .. floor(batch_next - batch_first) .. (lean_outcomes and ',"o":1' or "") .. ',"ps":['
    .. concat(batch_ps, ",") .. '],"x":[' .. concat(batch, ",") .. "]" .. messages .. "}"
  batch_next, batch_bytes, batch, batch_ps, batch_index = -1, 0, {}, {}, {}
  set_quiet(true)
  write_line(text, s)
end

-- the batch a tick goes into: the pending one if the tick follows it and it has room, else a new one
local function open_tick(tick)
  if batch_next >= 0 and (tick ~= batch_next or batch_bytes > limit_bytes) then flush() end
  if batch_next < 0 then
    batch_first, flush_at = tick, tick + MAX_EMPTY - 1
    set_quiet(false)
  end
end

-- one more loop tick in the batch; `body` is its entry's fields (",..." text), "" when it has none;
-- `something`: the tick had messages (encode_messages opened its batch) or a body, so it must be written
-- within flush_seconds
local function add_tick(tick, body, has_messages)
  if not has_messages then
    if batch_next >= 0 and batch_bytes + #body > limit_bytes then flush() end
    open_tick(tick)
  end
  if body ~= "" then
    local entry = '{"i":' .. floor(tick - batch_first) .. body .. "}"
    batch[#batch + 1] = entry
    batch_bytes = batch_bytes + #entry + 1
  end
  if body ~= "" or has_messages then
    local due = batch_first + flush_ticks - 1 -- a tick with something waits at most flush_seconds
    if due < flush_at then flush_at = due end
  end
  batch_next = tick + 1
end

-- a tick's messages into the batch's flat arrays (see mv and md above); the sender an index (from 1) into
-- the record's "ps" (the batch's senders, each written once per record)
local function encode_messages(messages, tick)
  open_tick(tick)
  local offset, k, d, bytes = tick - batch_first, mv_n, md_n, batch_bytes
  local i, m = 1, messages[1]
  while m ~= nil do
    local p = m.sender
    local sid = p.session_id
    local c = presence_texts[sid]
    if c == nil or c[1] ~= p.user_id or c[2] ~= p.username or c[3] ~= p.node then
      c = { p.user_id, p.username, p.node, "[" .. json_text(p.user_id) .. "," .. json_text(sid) .. ","
        .. json_text(p.username or "") .. "," .. json_text(p.node or "") .. "]" }
      presence_texts[sid] = c
    end
    local idx = batch_index[c]
    if idx == nil then
      idx = #batch_ps + 1
      batch_ps[idx] = c[4]
      batch_index[c] = idx
      bytes = bytes + #c[4] + 1
    end
    local op, data = m.op_code, m.data
    mv[k + 1], mv[k + 2], mv[k + 3] = offset, idx, op
    if data == nil or (any_redact_op and redact_ops[op]) then
      mv[k + 4] = -1
      bytes = bytes + 40
    else
      d = d + 1
      md[d] = data
      local len = #data
      mv[k + 4] = len
      bytes = bytes + 40 + len + len / 3
    end
    mv[k + 5], mv[k + 6] = m.reliable == true, m.receive_time_ms
    k = k + 6
    i = i + 1
    m = messages[i]
  end
  mv_n, md_n, batch_bytes = k, d, bytes
end

-- after encode_messages failed part way: the slots it filled are not the batch's
local function drop_partial()
  for j = mv_n + 1, #mv do mv[j] = nil end
  for j = md_n + 1, #md do md[j] = nil end
end

-- a lean loop's entry fields after the call: nondeterministic values, the error, the outcome (if observed)
local function lean_body(tick, ok, result, last, call)
  local body = ""
  if lean_nd[1] ~= nil then
    local nd = lean_nd
    lean_nd = {}
    lean_call.nd = lean_nd
    body = ',"nd":' .. nk.json_encode(nd)
  end
  if not ok then return body .. ',"e":' .. json_text(raw_type(result) == "string" and result or raw_tostring(result)) end
  if call ~= nil then
    local out, o, any = call.out, {}, false
    if #out.b > 0 then o.b, any = out.b, true end
    if #out.kk > 0 then o.kk, any = out.kk, true end
    if #out.lu > 0 then o.lu, any = out.lu, true end
    if last == nil then
      o.st, any = true, true
    elseif (opts.snapshot_every or 0) > 0 and tick % opts.snapshot_every == 0 then
      o.ss, any = redacted(last), true
    end
    if any then
      local ok_o, text = raw_pcall(nk.json_encode, o)
      if not ok_o and o.ss ~= nil then
        o.ss, o.ss_error = nil, raw_tostring(text)
        text = nk.json_encode(o)
      elseif not ok_o then
        raw_error(text, 0)
      end
      body = body .. ',"o":' .. text
    end
  end
  return body
end

local function record_tick(tick, has_messages, prefix, ok, result, last, call)
  add_tick(tick, prefix .. lean_body(tick, ok, result, last, call), has_messages)
end

-- after a lean loop: its entry into the batch (`prefix`: entry fields written before the call), the batch
-- written when due; returns exactly what the loop returned, or raises its error again
local function lean_after(tick, has_messages, prefix, call, ok, ...)
  active = idle_active
  local result, last = ...
  local n = raw_select("#", ...)
  if n ~= 1 then last = n > 1 and (raw_select(n, ...)) or nil else last = result end -- Nakama reads the top
  local ok_capture, capture_err = raw_pcall(record_tick, tick, has_messages, prefix, ok, result, last, call)
  if not ok_capture then
    lean_nd = {}
    lean_call.nd = lean_nd
    raw_pcall(nk.logger_warn, "nkreplay_capture: could not record a loop call: " .. raw_tostring(capture_err))
    raw_pcall(add_tick, tick, ',"capture_error":' .. json_text(raw_tostring(capture_err)), has_messages)
  end
  -- before Nakama's crash line, or its line for a match ended by nil or refused for several values
  if not ok or last == nil or n ~= 1 then
    raw_pcall(flush, true)
  elseif tick >= flush_at then
    raw_pcall(flush)
  end
  if not ok then raw_error(result, 0) end
  return ...
end

-- after a loop that had no messages: a tick that consumed nothing, returned one state and raised nothing
-- is only counted (the hot path of an idle match: as little as possible)
local function after_empty(tick, ok, state, ...)
  active = idle_active -- (a value consumed by a quiet loop later is written at once)
  if ok and state ~= nil and tick == batch_next and lean_nd[1] == nil and raw_select("#", ...) == 0 then
    batch_next = tick + 1
    if tick >= flush_at then raw_pcall(flush) end
    return state
  end
  return lean_after(tick, false, "", nil, ok, state, ...)
end

-- a value consumed by an unobserved loop: written at once as its own record (kind "nd", the loop's tick),
-- since the loop's end is not seen (it may raise: Nakama's crash line must come after the value). The
-- loops after it are observed (batched) until the batch is written, so a handler that draws a value every
-- tick writes about one such record per flush_seconds
function quiet_value(source, value, tick)
  local ok, err = raw_pcall(emit, { k = "nd", t = tick, nd = { { source, value } } })
  if not ok then raw_pcall(nk.logger_warn, "nkreplay_capture: could not record a value: " .. raw_tostring(err)) end
  if batch_next < 0 then
    batch_first, batch_next, flush_at = tick + 1, tick + 1, tick + flush_ticks
    set_quiet(false)
  end
end

-- after a loop whose messages encode_messages took: a tick that consumed nothing, returned one state and
-- raised nothing needs no entry (the hot path of a loaded match)
local function after_messages(tick, ok, state, ...)
  active = idle_active
  if ok and state ~= nil and lean_nd[1] == nil and raw_select("#", ...) == 0 then
    local due = batch_first + flush_ticks - 1 -- a tick with something waits at most flush_seconds
    if due < flush_at then flush_at = due end
    batch_next = tick + 1
    if tick >= flush_at then raw_pcall(flush) end
    return state
  end
  return lean_after(tick, true, "", nil, ok, state, ...)
end

-- run a callback with recording: `record` holds the inputs; returns exactly what the callback returned
local function run(record, fn, ...)
  if batch_next >= 0 then raw_pcall(flush) end -- lean: the loops before this call come first
  active = { nd = {}, out = { b = {}, kk = {}, lu = {} } }
  local r = pack(raw_pcall(fn, ...))
  local call = active
  active = idle_active
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

R.write_line = write_line

-- the recorded callbacks of the handler M (nkreplay_capture checked the options and drew the sample).
-- `later`: loaded after match_init, which nkreplay_capture recorded (the match's state is in S)
function R.wrap(M, options, later)
  set_options(options)
  lean = opts.mode == "lean"
  lean_outcomes = lean and opts.outcomes == true
  quiet = lean and not lean_outcomes
  idle_active = quiet and quiet_call or nil
  any_redact_op = next(redact_ops) ~= nil
  limit_bytes = (opts.max_line or 6000) - 200
  local snapshot_every = opts.snapshot_every or 0
  if lean and not lean_outcomes and snapshot_every > 0 then -- (nkreplay_capture warned)
    opts.snapshot_every, snapshot_every = 0, 0
  end
  if later and S.seq ~= nil then
    seq, match_id, flush_ticks, active = S.seq, S.match_id, S.flush_ticks, idle_active
    match_id_text = json_text(raw_tostring(match_id))
  end
  local W = {}
  for k, v in raw_pairs(M) do W[k] = v end

  W.match_init = function(context, params, ...)
    match_id = context.match_id
    match_id_text = json_text(raw_tostring(match_id))
    seq, batch_next, batch_bytes, batch, batch_ps, batch_index = 0, -1, 0, {}, {}, {}
    set_quiet(true)
    local record = {
      k = "init", t = 0, p = redacted(params),
      h = { v = C.VERSION, mod = opts.module or "", node = context.node, snap = snapshot_every,
            red = opts.redact or {}, redop = opts.redact_op_codes or {}, mode = opts.mode },
      finish = function(rec, r)
        rec.o.tr, rec.o.l = r[3], r[4]
        if lean then
          local rate = raw_type(r[3]) == "number" and r[3] or 0
          flush_ticks = floor(rate * (opts.flush_seconds or 1))
          if flush_ticks < 1 then flush_ticks = 1 end
          rec.h.flush = flush_ticks
          if lean_outcomes then rec.h.outc = true end
          if quiet then rec.h.quiet = true end
        end
        if r[2] == nil then rec.o.st = true end
      end,
    }
    return run(record, M.match_init, context, params, ...)
  end

  W.match_join_attempt = function(context, dispatcher, tick, state, presence, metadata, ...)
    local record = {
      k = "join_attempt", t = tick, pr = presence4(presence), md = redacted(metadata),
      vars = redacted(context.vars),
      finish = function(rec, r)
        -- Nakama reads the verdict from the top of the stack: (state, accept[, reason])
        local n = r.n - 1
        if n >= 3 then rec.o.a, rec.o.r = r[3], r[4] elseif n == 2 then rec.o.a = r[3] end
        if r[2] == nil then rec.o.st = true end
      end,
    }
    return run(record, M.match_join_attempt, context, dispatcher_for(dispatcher), tick, state, presence, metadata, ...)
  end

  -- match_join and match_leave: a record of kind `kind` with the presences, the handler's M[name] called
  local function presences_call(kind, name)
    return function(context, dispatcher, tick, state, presences, ...)
      local ps = {}
      for i, p in raw_ipairs(presences) do ps[i] = presence5(p) end
      local record = { k = kind, t = tick, ps = ps, finish = state_result }
      return run(record, M[name], context, dispatcher_for(dispatcher), tick, state, presences, ...)
    end
  end
  W.match_join = presences_call("join", "match_join")
  W.match_leave = presences_call("leave", "match_leave")

  local loop = M.match_loop
  W.match_loop = function(context, dispatcher, tick, state, messages, ...)
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
          rec.o.ss = redacted(r[2]) -- encoded with the record (emit drops it if it cannot be encoded)
        end
      end,
    }
    return run(record, M.match_loop, context, dispatcher_for(dispatcher), tick, state, messages, ...)
  end

  W.match_terminate = function(context, dispatcher, tick, state, grace_seconds, ...)
    local record = { k = "terminate", t = tick, g = grace_seconds, finish = state_result }
    return run(record, M.match_terminate, context, dispatcher_for(dispatcher), tick, state, grace_seconds, ...)
  end

  W.match_signal = function(context, dispatcher, tick, state, data, ...)
    local record = {
      k = "signal", t = tick, d = data,
      finish = function(rec, r)
        rec.o.rp = r[3]
        if r[2] == nil then rec.o.st = true end
      end,
    }
    return run(record, M.match_signal, context, dispatcher_for(dispatcher), tick, state, data, ...)
  end

  if lean_outcomes then -- match_loop by inputs and outcomes, batched (see the lean mode section)
    W.match_loop = function(context, dispatcher, tick, state, messages, ...)
      local has_messages, prefix = messages[1] ~= nil, ""
      if has_messages then
        local ok_m, err = raw_pcall(encode_messages, messages, tick)
        if not ok_m then
          has_messages = false
          raw_pcall(drop_partial)
          raw_pcall(nk.logger_warn, "nkreplay_capture: could not record a loop's messages: " .. raw_tostring(err))
          prefix = ',"capture_error":' .. json_text(raw_tostring(err))
        end
      end
      local call = { nd = lean_nd, out = { b = {}, kk = {}, lu = {} } }
      active = call
      return lean_after(tick, has_messages, prefix, call,
        raw_pcall(loop, context, dispatcher_for(dispatcher), tick, state, messages, ...))
    end
  elseif lean then -- match_loop by inputs only, batched; the real dispatcher. Nakama passes five arguments
    W.match_loop = function(context, dispatcher, tick, state, messages)
      active = lean_call -- (loops without messages while nothing waits run quiet in nkreplay_capture)
      if messages[1] == nil then
        return after_empty(tick, raw_pcall(loop, context, dispatcher, tick, state, messages))
      end
      local ok_m, err = raw_pcall(encode_messages, messages, tick)
      if ok_m then return after_messages(tick, raw_pcall(loop, context, dispatcher, tick, state, messages)) end
      local prefix = ""
      if not ok_m then
        raw_pcall(drop_partial)
        raw_pcall(nk.logger_warn, "nkreplay_capture: could not record a loop's messages: " .. raw_tostring(err))
        prefix = ',"capture_error":' .. json_text(raw_tostring(err))
      end
      return lean_after(tick, ok_m, prefix, nil, raw_pcall(loop, context, dispatcher, tick, state, messages))
    end
  end

  return W
end

return R
