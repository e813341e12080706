-- The Lua side of replay.lua._handler: Nakama's Lua environment (gopher-lua flavoured) inside LuaJIT's interpreter.
--
-- Executed once per LuaHandler with `host`, a table of Python functions. Builds the sandbox (Nakama's
-- library set: base, package, table, string, math, bit32, os.clock/difftime/date/time), the `nakama`
-- module, the match dispatcher, the callback trampoline (gopher-lua style tracebacks), conversions and
-- the instruction-count hook that lets the hang guard stop a runaway loop. Returns the table `api`
-- the Python side calls. Host functions return `ok, ...`; a false `ok` carries the error message, raised
-- here at the caller's line, as gopher-lua's RaiseError does.
local host = ...

local debug_getinfo, debug_sethook, debug_getmetatable = debug.getinfo, debug.sethook, debug.getmetatable
local debug_getupvalue, debug_setupvalue = debug.getupvalue, debug.setupvalue
local raw_dump, raw_loadstring, raw_getfenv, raw_setfenv = string.dump, loadstring, getfenv, setfenv
local raw_pcall, raw_xpcall, raw_error, raw_type, raw_select = pcall, xpcall, error, type, select
local raw_unpack, raw_tostring, raw_next, raw_pairs, raw_ipairs = unpack, tostring, next, pairs, ipairs
local raw_rawget, raw_rawset, raw_setmetatable, raw_getmetatable = rawget, rawset, setmetatable, getmetatable
local floor, huge = math.floor, math.huge
local str_format, str_sub, str_find, str_gsub = string.format, string.sub, string.find, string.gsub
local concat = table.concat

local api = {}
local G = _G

local function pack(...)
  return { n = raw_select("#", ...), ... }
end

-- Library functions and this glue (chunks named "=[nkreplay ...]") stand in for gopher-lua's Go functions.
local function is_internal(info)
  return info.what == "C" or str_sub(info.source, 1, 10) == "=[nkreplay"
end

-- gopher-lua's where(): "file:line:" of the first Lua function from stack level `level` (counted from the
-- caller of where) upwards, skipping Go functions; "" when there is none.
local function where(level)
  local l = level + 1
  while true do
    local info = debug_getinfo(l, "Sl")
    if info == nil then return "" end
    if not is_internal(info) and info.currentline >= 0 then
      local src = info.source
      local c = str_sub(src, 1, 1)
      if c == "@" or c == "=" then src = str_sub(src, 2) end
      return src .. ":" .. info.currentline .. ":"
    end
    l = l + 1
  end
end

-- raise `msg` as a Go function's RaiseError does: at the first Lua caller. `argn` makes it
-- "bad argument #argn to NAME (msg)", NAME as the calling instruction names the function, or
-- "(anonymous)" when a Go function (pcall...) called it.
local function raise(msg, argn, level, fixed_name)
  if argn == 0 then raw_error(msg, 0) end -- a Go panic: its text alone
  if argn then
    local name = fixed_name or "(anonymous)"
    local caller = debug_getinfo(level + 2, "S")
    if fixed_name == nil and caller ~= nil and not is_internal(caller) then
      name = (debug_getinfo(level + 1, "n") or {}).name or "?"
    end
    msg = "bad argument #" .. argn .. " to " .. name .. " (" .. msg .. ")"
  end
  raw_error(where(level + 1) .. " " .. msg, 0)
end

-- Host functions answer `ok, values...`, or `false, message[, argument number]`. Wrappers never
-- tail-call, so the wrapper is level 1 of `raise` and its caller level 2.
local function wrap0(f)
  return function(...)
    local ok, msg, argn = f(raw_select("#", ...), ...)
    if not ok then raise(msg, argn, 1) end
  end
end
local function wrap1(f)
  return function(...)
    local ok, a, argn = f(raw_select("#", ...), ...)
    if not ok then raise(a, argn, 1) end
    return a
  end
end
local function wrap3(f)
  return function(...)
    local ok, a, b, c = f(raw_select("#", ...), ...)
    if not ok then raise(a, b, 1) end
    return a, b, c
  end
end

-- error(msg, level) as gopher-lua positions it: from stack index level-1 (0 is error itself) up to the
-- first Lua function; so levels 1 and 2 both name the function that called error.
function G.error(msg, level)
  if level == nil then level = 1 end
  if raw_type(msg) == "string" and raw_type(level) == "number" and level > 0 then
    raw_error(where(level) .. " " .. msg, 0)
  end
  raw_error(msg, 0)
end

-- -- hang guard ---------------------------------------------------------------------------------------
-- The hook calls into Python every HOOK_EVERY instructions; the hang guard's watchdog raises its
-- asynchronous CallbackHung there. Once hung, every hook and every pcall re-raises, so handler code that
-- catches errors cannot keep the loop alive.
local hung = { false }
local HOOK_EVERY = 100000
local host_poll, host_is_hung = host.poll, host.is_hung
local function hook()
  if hung[1] then raw_error(hung[2], 0) end
  local ok, e = raw_pcall(host_poll)
  if not ok then
    hung[1], hung[2] = true, e
    raw_error(e, 0)
  end
end

local function check_hung(ok, ...)
  if not ok then
    local e = ...
    if hung[1] or host_is_hung(e) then
      hung[1] = true
      hung[2] = hung[2] or e
      raw_error(hung[2], 0)
    end
  end
  return ok, ...
end

-- -- gopher-lua flavoured text --------------------------------------------------------------------------
local host_number_string, host_format = host.number_string, host.format
local INT64_LO, INT64_HI = -9223372036854775808, 9223372036854775808

local function number_string(v)
  if v == floor(v) and v >= INT64_LO and v < INT64_HI then
    return str_format("%d", v)
  end
  return host_number_string(v)
end
api.number_string = number_string

-- Deterministic addresses: gopher-lua prints tables, functions and userdata as Go pointers ("table:
-- 0xc000123450"), LuaJIT as C pointers that change from run to run. Here each object gets an address
-- shaped like a Go heap pointer the first time its text is needed (tostring, print, string.format, an
-- error value, nk.json_encode of a function), in that order, kept for the object's life; copies made by
-- api.deep_copy keep the original's. The counter is part of api.runtime_state, so a call run again from
-- a snapshot hands out the same addresses.
local addresses = raw_setmetatable({}, { __mode = "k" })
local address_count = { 0 }
local ADDRESS_BASE, ADDRESS_STEP = 824633786368, 64 -- 0xc000010000: where Go's heap arenas start

local function pointer_text(v)
  local a = addresses[v]
  if a == nil then
    address_count[1] = address_count[1] + 1
    a = str_format("0x%x", ADDRESS_BASE + address_count[1] * ADDRESS_STEP)
    addresses[v] = a
  end
  return raw_type(v) .. ": " .. a
end
api.pointer_text = pointer_text

function api.runtime_state()
  return address_count[1]
end

function api.set_runtime_state(n)
  address_count[1] = n
end

local POINTER_TYPES = { table = true, ["function"] = true, userdata = true, thread = true }

function G.tostring(v)
  local mt = debug_getmetatable(v)
  if mt ~= nil and raw_type(mt) == "table" then
    local ts = raw_rawget(mt, "__tostring")
    if ts ~= nil then return ts(v) end
  end
  local t = raw_type(v)
  if t == "number" then return number_string(v) end
  if POINTER_TYPES[t] then return pointer_text(v) end
  return raw_tostring(v)
end
local lua_tostring = G.tostring

-- Which formats LuaJIT's formatting renders exactly as Go's fmt does, verb by verb: "f"/"e"/"E" for
-- finite numbers, "g"/"G" with a precision, "d"/"i" for whole numbers, "x"/"X"/"o" for whole non-negative
-- numbers, "s" for strings, "%%"; no "#" flag. Anything else goes through replay.gocompat._fmt.
local FAST_FLOAT = { f = true, e = true, E = true }
local format_cache, format_cache_size = {}, 0

local function fast_spec(fmt)
  local verbs = format_cache[fmt]
  if verbs ~= nil then return verbs end
  verbs = {}
  local i, consumed = 1, 0
  while true do
    local a, b, flags, width, dot, prec, verb = str_find(fmt, "%%([%-+ 0#]*)(%d*)(%.?)(%d*)(.)", i)
    if a == nil then break end
    if verb == "%" then
      if flags ~= "" or width ~= "" or dot ~= "" or prec ~= "" then verbs = false break end
      consumed = consumed + 2
    else
      consumed = consumed + 1
      if str_find(flags, "#", 1, true) then verbs = false break end
      if FAST_FLOAT[verb] or ((verb == "g" or verb == "G") and dot == ".") then
        verbs[#verbs + 1] = "float"
      elseif (verb == "d" or verb == "i") and dot == "" then
        verbs[#verbs + 1] = "int"
      elseif (verb == "x" or verb == "X" or verb == "o") and dot == "" then
        verbs[#verbs + 1] = "uint"
      elseif verb == "s" then
        -- C pads and cuts by bytes, Go by characters: only ASCII strings when a width or precision is set
        verbs[#verbs + 1] = (width == "" and dot == "") and "string" or "ascii"
      else
        verbs = false
        break
      end
    end
    i = b + 1
  end
  local percents = select(2, str_gsub(fmt, "%%", ""))
  if verbs and consumed ~= percents then verbs = false end -- a lone trailing %
  -- gopher-lua hands Go min(#args, npat) arguments, npat = count("%") - count("%%"): more than the verbs
  -- print as %!(EXTRA ...), fewer as %!d(MISSING); only an exact match formats like C
  if verbs then verbs.npat = percents - select(2, str_gsub(fmt, "%%%%", "")) end
  if format_cache_size > 1000 then format_cache, format_cache_size = {}, 0 end
  format_cache[fmt] = verbs
  format_cache_size = format_cache_size + 1
  return verbs
end

local function fast_args_ok(verbs, n, ...)
  local given = n < verbs.npat and n or verbs.npat
  if given ~= #verbs then return false end
  for k = 1, #verbs do
    local v = raw_select(k, ...)
    local kind, t = verbs[k], raw_type(v)
    if kind == "string" then
      -- C's sprintf stops at a NUL byte (Lua 5.1 keeps strings of 100+ bytes whole); Go prints every byte
      if t ~= "string" or str_find(v, "\0", 1, true) then return false end
    elseif kind == "ascii" then
      if t ~= "string" or str_find(v, "[\128-\255]") or str_find(v, "\0", 1, true) then return false end
    elseif t ~= "number" or v ~= v or v == huge or v == -huge then
      return false
    elseif kind == "int" then
      if v ~= floor(v) or v >= 9007199254740992 or v <= -9007199254740992 then return false end
    elseif kind == "uint" then
      if v ~= floor(v) or v < 0 or v >= 9007199254740992 then return false end
    elseif v ~= 0 and v < 1e-140 and v > -1e-140 then
      -- LuaJIT's own %f prints garbage under about 4.6e-153 (%.3f of 1.9e-171 gave "29986769001590426.065")
      return false
    end
  end
  return true
end

function string.format(fmt, ...)
  local t = raw_type(fmt)
  if t == "string" then
    local verbs = fast_spec(fmt)
    if verbs and fast_args_ok(verbs, raw_select("#", ...), ...) then return str_format(fmt, ...) end
  end
  if t == "number" then
    fmt = number_string(fmt)
  elseif t ~= "string" then
    raise(str_format("string expected, got %s", t), 1, 1)
  end
  local n = raw_select("#", ...)
  if n == 0 and not fmt:find("%", 1, true) then return fmt end
  local args, names = pack(...), {}
  for i = 1, n do
    local v = args[i]
    local vt = raw_type(v)
    if POINTER_TYPES[vt] then
      names[i] = pointer_text(v)
    elseif v == 0 and vt == "number" and 1 / v < 0 then
      names[i] = "\0-0" -- lupa hands -0.0 to Python as the integer 0: say it is minus zero
    else
      names[i] = ""
    end
  end
  local ok, text = host_format(fmt, args, names, n)
  if not ok then raise(text, nil, 1) end
  return text
end

-- tonumber: gopher-lua's rules (replay.lua._handler.go_tonumber); plain decimals stay in Lua
local raw_tonumber = tonumber
local host_tonumber = host.tonumber
function G.tonumber(...)
  local v, base = ...
  if base == nil then
    local t = raw_type(v)
    if t == "number" then return v end
    if t ~= "string" then
      if raw_select("#", ...) == 0 then raise("value expected", 1, 1) end
      return nil
    end
    if str_find(v, "^%-?%d+%.%d+$") or (#v < 18 and str_find(v, "^%-?%d+$")) then return raw_tonumber(v) end
  end
  local ok, n, argn = host_tonumber(v, base)
  if not ok then raise(n, argn, 1) end
  return n
end

function G.print(...)
  local n, parts = raw_select("#", ...), {}
  for i = 1, n do parts[i] = lua_tostring((raw_select(i, ...))) end
  host.print(concat(parts, "\t"))
end

-- -- pairs order ----------------------------------------------------------------------------------------
-- gopher-lua walks a table's integer keys 1..n first, then other keys in insertion order. LuaJIT walks its
-- hash layout, and LuaJIT seeds its string hash at random for every Lua state: its own order changes from
-- run to run. Insertion order cannot be known (no hook on table writes), so pairs/next walk a fixed
-- order instead: positive whole keys below 2^26 ascending (gopher-lua's array part), then the other
-- numbers ascending, strings in byte order (LuaJIT's < compares bytes), false, true, and last tables,
-- functions and userdata as keys, which have no value to sort by (their hash layout: addresses, as in
-- PUC Lua). api.set_pairs_order("reverse") keeps the integer keys ascending and reverses the others, so
-- a replay can tell whether a handler depends on the order (replay/lua/_check.py).
local raw_sort = table.sort -- LuaJIT's own: table.sort becomes Go's pdqsort below
local ARRAY_END = 67108864 -- gopher-lua's MaxArrayIndex
local reverse_others = false

local function append(list, from)
  local n = #list
  for i = 1, #from do list[n + i] = from[i] end
end

-- the keys of t in the order above
local function ordered_keys(t)
  local ints, ni, ascending = {}, 0, true
  local strs, nums, objs, has_false, has_true
  local k = raw_next(t)
  while k ~= nil do
    local tk = raw_type(k)
    if tk == "string" then
      if strs == nil then strs = { k } else strs[#strs + 1] = k end
    elseif tk == "number" then
      if k >= 1 and k < ARRAY_END and k % 1 == 0 then
        ni = ni + 1
        if ni > 1 and k < ints[ni - 1] then ascending = false end
        ints[ni] = k
      elseif nums == nil then
        nums = { k }
      else
        nums[#nums + 1] = k
      end
    elseif k == false then
      has_false = true
    elseif k == true then
      has_true = true
    elseif objs == nil then
      objs = { k }
    else
      objs[#objs + 1] = k
    end
    k = raw_next(t, k)
  end
  if not ascending then raw_sort(ints) end
  if strs == nil and nums == nil and objs == nil and not has_false and not has_true then return ints end
  local others = {}
  if nums then
    raw_sort(nums)
    append(others, nums)
  end
  if strs then
    raw_sort(strs)
    append(others, strs)
  end
  if has_false then others[#others + 1] = false end
  if has_true then others[#others + 1] = true end
  if objs then append(others, objs) end
  if reverse_others then
    for i = #others, 1, -1 do ints[#ints + 1] = others[i] end
  else
    append(ints, others)
  end
  return ints
end

-- next(t, k): the walk's place in t is kept per table from next(t) on (weakly); a key it does not hold
-- (added since) starts a new walk from the table as it is now
local walks = raw_setmetatable({}, { __mode = "k" })

local function walk_of(t)
  local order = ordered_keys(t)
  local index = {}
  for i = 1, #order do index[order[i]] = i end
  local walk = { order = order, index = index }
  walks[t] = walk
  return walk
end

function G.next(t, k)
  if raw_type(t) ~= "table" then raise("table expected, got " .. raw_type(t), 1, 1) end
  local walk, i
  if k == nil then
    if raw_next(t) == nil then return nil end
    walk, i = walk_of(t), 0
  else
    walk = walks[t]
    i = walk and walk.index[k]
    if i == nil then
      if raw_rawget(t, k) == nil then return raw_next(t, k) end -- Lua's own error for a key t never held
      walk = walk_of(t)
      i = walk.index[k]
    end
  end
  local order = walk.order
  for j = i + 1, #order do
    local key = order[j]
    local v = raw_rawget(t, key)
    if v ~= nil then return key, v end
  end
  return nil
end

-- pairs(t): an iterator with a walk of its own, so walks of the same table nested in one another, or
-- keys set to nil on the way, do not disturb it
function G.pairs(t)
  if raw_type(t) ~= "table" then raise("table expected, got " .. raw_type(t), 1, 1) end
  local order, j = ordered_keys(t), 0
  return function()
    while true do
      j = j + 1
      local key = order[j]
      if key == nil then return nil end
      local v = raw_rawget(t, key)
      if v ~= nil then return key, v end
    end
  end, t, nil
end

function api.set_pairs_order(mode)
  reverse_others = mode == "reverse"
end

-- -- gopher-lua's library semantics that Lua 5.1 does not share -------------------------------------------
-- math.huge is Go's math.MaxFloat64 (mathlib.go: OpenMath), so 1/0 > math.huge and json_encode(math.huge)
-- is a number
math.huge = 1.7976931348623157e308

-- math.max()/math.min() with no argument: "wrong number of arguments" (gopher-lua's RaiseError)
local raw_max, raw_min = math.max, math.min
function math.max(...)
  if raw_select("#", ...) == 0 then raise("wrong number of arguments", nil, 1) end
  return raw_max(...)
end
function math.min(...)
  if raw_select("#", ...) == 0 then raise("wrong number of arguments", nil, 1) end
  return raw_min(...)
end

-- pcall() without a function: gopher-lua's CheckAny; xpcall's handler must be a function (CheckFunction)
-- and an error inside the handler is raised out of xpcall (Lua 5.1 answers "error in error handling")
function G.pcall(...)
  if raw_select("#", ...) == 0 then raise("value expected", 1, 1, "pcall") end
  return check_hung(raw_pcall(...))
end

function G.xpcall(f, handler)
  if raw_type(f) ~= "function" then raise("function expected, got " .. raw_type(f), 1, 1, "xpcall") end
  if raw_type(handler) ~= "function" then raise("function expected, got " .. raw_type(handler), 2, 1, "xpcall") end
  local failed
  local function results(ok, ...)
    if failed then raw_error(failed[1], 0) end
    return check_hung(ok, ...)
  end
  return results(raw_xpcall(f, function(e)
    if hung[1] or host_is_hung(e) then return e end
    local ok, r = raw_pcall(handler, e)
    if not ok then
      failed = { r }
      return r
    end
    return r
  end))
end

-- Numbers become text the Go way (LNumber.String) in table.concat and the string library; `..` cannot
-- be changed (LuaJIT's VM converts with "%.14g").
local raw_concat = table.concat
function table.concat(...)
  local t, sep, i, j = ...
  if raw_type(t) ~= "table" then raise("table expected, got " .. raw_type(t), 1, 1) end
  if sep == nil then sep = "" elseif raw_type(sep) == "number" then sep = number_string(sep)
  elseif raw_type(sep) ~= "string" then raise("string expected, got " .. raw_type(sep), 2, 1) end
  local n = #t
  if i == nil then i = 1 elseif raw_type(i) ~= "number" then raise("number expected, got " .. raw_type(i), 3, 1) end
  if j == nil then j = n elseif raw_type(j) ~= "number" then raise("number expected, got " .. raw_type(j), 4, 1) end
  i, j = floor(i), floor(j)
  -- tablelib.go: with exactly three arguments an out-of-range start gives ""; then both ends are clamped
  if raw_select("#", ...) == 3 and (i > n or i < 1) then return "" end
  if i > n then i = n end
  if i < 1 then i = 1 end
  if j > n then j = n end
  if i > j then return "" end
  local parts, converted = nil, false
  for k = i, j do
    local v = raw_rawget(t, k)
    local vt = raw_type(v)
    if vt == "number" then
      if not converted then
        parts, converted = {}, true
        for m = i, k - 1 do parts[m - i + 1] = raw_rawget(t, m) end
      end
      v = number_string(v)
    elseif vt ~= "string" then
      raise("invalid value (" .. vt .. ") at index " .. k .. " in table for concat", nil, 1)
    end
    if converted then parts[k - i + 1] = v end
  end
  if converted then return raw_concat(parts, sep) end
  return raw_concat(t, sep, i, j)
end

-- string functions: numbers as Go text; gsub keeps "%c" (gopher-lua's replacement scanner copies "%"
-- and any non-digit after it), find of "" answers 1, 0 and is plain only with exactly four arguments,
-- upper/lower map non-ASCII letters (Go's strings.ToUpper/ToLower), dump raises. The originals are
-- called through locals named like them, so LuaJIT's own argument errors still name the function.
local gsub, find, upper, lower = string.gsub, string.find, string.upper, string.lower
local host_case = wrap1(host.case)
local function ret(...) return ... end
local function text_arg(v)
  if raw_type(v) == "number" then return number_string(v) end
  return v
end
local function escape_replacement(c)
  if c == "%" or (c ~= "" and str_find("0123456789", c, 1, true)) then return "%" .. c end
  return "%%" .. c
end

function string.gsub(s, pattern, repl, n)
  s, pattern = text_arg(s), text_arg(pattern)
  local rt = raw_type(repl)
  if rt == "string" then
    if str_find(repl, "%", 1, true) then repl = gsub(repl, "%%(.?)", escape_replacement) end
  elseif rt ~= "table" and rt ~= "function" then
    raise("string or table or function expected, got " .. rt, 3, 1)
  end
  return ret(gsub(s, pattern, repl, n))
end

function string.find(...)
  local s, pattern, init, plain = ...
  s, pattern = text_arg(s), text_arg(pattern)
  if pattern == "" and raw_type(s) == "string" then return 1, 0 end
  if raw_select("#", ...) ~= 4 then plain = nil end
  return ret(find(s, pattern, init, plain))
end

function string.upper(s)
  s = text_arg(s)
  if raw_type(s) == "string" and str_find(s, "[\128-\255]") then return host_case(s, true) end
  return ret(upper(s))
end

function string.lower(s)
  s = text_arg(s)
  if raw_type(s) == "string" and str_find(s, "[\128-\255]") then return host_case(s, false) end
  return ret(lower(s))
end

function string.dump()
  raise("GopherLua does not support the string.dump", nil, 1)
end

-- -- library set ----------------------------------------------------------------------------------------
-- LuaJIT's own libraries (jit, bit, ffi, string.buffer, table.new/clear...) are none of gopher-lua's: gone
-- from the globals, package.loaded and package.preload, so neither a name nor require reaches them (the
-- replay's Python side turned the JIT compiler off before this chunk ran: see replay/lua/_handler.py).
-- A cdata literal (1LL, 2i) makes LuaJIT's lexer open ffi, which puts itself into package.loaded, unless it
-- is open already: so it is opened here, once, and dropped with the rest.
if package.preload.ffi then package.preload.ffi() end
G.io, G.debug, G.coroutine, G.python, G.gcinfo, G.jit, G.bit = nil, nil, nil, nil, nil, nil, nil
for _, name in raw_ipairs({ "io", "debug", "coroutine", "python", "jit", "jit.opt", "bit", "ffi", "string.buffer" }) do
  package.loaded[name] = nil
end
for name in raw_pairs(package.preload) do package.preload[name] = nil end
table.foreach, table.foreachi, table.setn, table.move = nil, nil, nil, nil
package.searchpath = nil
math.mod = math.mod or math.fmod
string.gfind = string.gmatch -- gopher-lua keeps Lua 5.0's name (stringlib.go)
-- Lua 5.2 extensions LuaJIT adds to 5.1 functions, which gopher-lua has not: math.log's base, string.rep's
-- separator, load of a string (gopher-lua's load takes a reader function: CheckFunction)
local log, rep, load = math.log, string.rep, load
function math.log(x) return ret(log(x)) end
function string.rep(s, n) return ret(rep(s, n)) end
function G.load(f, chunkname)
  if raw_type(f) ~= "function" then raise("function expected, got " .. raw_type(f), 1, 1) end
  return load(f, chunkname)
end
G.os = {
  clock = wrap1(host.os_clock),
  time = wrap1(host.os_time),
  date = wrap1(host.os_date),
  difftime = wrap1(host.os_difftime),
}
package.loaded.os = G.os
math.random = wrap1(host.random)
math.randomseed = function() end -- values come from the recording (or the replay's seed), not from Lua
G.bit32 = {}
for name, f in raw_pairs(host.bit32) do G.bit32[name] = wrap1(f) end
package.loaded.bit32 = G.bit32

-- table.sort: gopher-lua sorts with Go's sort.Sort (pattern-defeating quicksort); ties and inconsistent
-- comparators then come out in Go's order, not Lua's. replay/lua/gosort.lua ports it.
table.sort = host.gosort

-- modules: package.preload, then Nakama's module folder(s); names are paths with dots
package.cpath = ""
package.loadlib = function() raw_error("loadlib is not supported", 2) end
package.loaders = {
  function(name)
    local f = package.preload[name]
    if f == nil then return str_format("\n\tno field package.preload['%s']", name) end
    return f
  end,
  function(name)
    local ok, source, chunkname = host.find_module(name)
    if not ok then return source end
    local fn, err = loadstring(source, chunkname)
    if fn == nil then raw_error("error loading module: " .. err, 0) end
    return fn
  end,
}

-- -- conversions ----------------------------------------------------------------------------------------
function api.presence(user_id, session_id, username, node, reason)
  return { user_id = user_id, session_id = session_id, username = username, node = node, reason = reason }
end

local function message(user_id, session_id, username, node, op_code, data, reliable, receive_time_ms)
  return {
    sender = { user_id = user_id, session_id = session_id, username = username, node = node },
    op_code = op_code, data = data, reliable = reliable, receive_time_ms = receive_time_ms,
  }
end
api.message = message

-- a loop's messages from their fields, 8 a message: the list as api.list builds it ({...})
function api.messages(...)
  local a, list, n = { ... }, {}, 0
  for i = 1, raw_select("#", ...), 8 do
    n = n + 1
    list[n] = message(a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4], a[i + 5], a[i + 6], a[i + 7])
  end
  return { raw_unpack(list, 1, n) }
end

function api.list(...)
  return { ... }
end

function api.new_table()
  return {}
end

-- a deep copy of a state (tables copied, metatables shared), cycles kept. A Lua closure in the state is
-- copied too: the same code with fresh upvalue cells holding the same values (tables of the state as
-- their copies), so a counter closure run again from a copy counts from where the copy was taken.
-- (Lua 5.1 cannot tell whether two closures share an upvalue cell: each copy gets its own.)

function api.deep_copy(v)
  local seen = {}
  local copy
  local function copy_function(f)
    local info = debug_getinfo(f, "Su")
    if info.what == "C" or info.nups == 0 or is_internal(info) then return f end
    local ok, code = raw_pcall(raw_dump, f)
    local g = ok and raw_loadstring(code)
    if not g then return f end
    seen[f] = g
    addresses[g] = addresses[f]
    raw_setfenv(g, raw_getfenv(f))
    for i = 1, info.nups do
      local _, value = debug_getupvalue(f, i)
      debug_setupvalue(g, i, copy(value))
    end
    return g
  end
  function copy(x)
    local t = raw_type(x)
    if t == "function" then return seen[x] or copy_function(x) end
    if t ~= "table" then return x end
    local c = seen[x]
    if c then return c end
    c = {}
    seen[x] = c
    addresses[c] = addresses[x]
    local k, val = raw_next(x)
    while k ~= nil do
      raw_rawset(c, copy(k), copy(val))
      k, val = raw_next(x, k)
    end
    local mt = raw_getmetatable(x)
    if mt ~= nil then raw_setmetatable(c, mt) end
    return c
  end
  return copy(v)
end

-- -- the nakama module ----------------------------------------------------------------------------------
local nk = {}
for name, f in raw_pairs(host.nk1) do nk[name] = wrap1(f) end
for name, f in raw_pairs(host.nk0) do nk[name] = wrap0(f) end
for name, f in raw_pairs(host.nk3) do nk[name] = wrap3(f) end
-- json_decode and json_encode: the common cases in Lua (replay/lua/json.lua), what the host's would give;
-- anything else, errors included, is the host's (raised as wrap1 raises them)
local host_json_decode, lua_json_decode = host.nk1.json_decode, host.json_decode
function nk.json_decode(...)
  local s = ...
  if raw_type(s) == "string" and raw_select("#", ...) == 1 then
    local v = lua_json_decode(s)
    if v ~= nil then return v end
  end
  local ok, a, argn = host_json_decode(raw_select("#", ...), ...)
  if not ok then raise(a, argn, 1) end
  return a
end
local host_json_encode, lua_json_encode = host.nk1.json_encode, host.json_encode
function nk.json_encode(...)
  if raw_select("#", ...) == 1 then
    local text = lua_json_encode((...))
    if text ~= nil then return text end
  end
  local ok, a, argn = host_json_encode(raw_select("#", ...), ...)
  if not ok then raise(a, argn, 1) end
  return a
end
local host_unavailable = host.unavailable
raw_setmetatable(nk, {
  __index = function(_, name)
    if raw_type(name) ~= "string" then return nil end
    return wrap0(function() return host_unavailable(name) end)
  end,
})
package.preload.nakama = function() return nk end

local dispatcher = {
  broadcast_message = wrap0(function(...) return host.broadcast(false, ...) end),
  broadcast_message_deferred = wrap0(function(...) return host.broadcast(true, ...) end),
  match_kick = wrap0(host.kick),
  match_label_update = wrap0(host.label_update),
}
api.dispatcher = dispatcher

-- -- callbacks ------------------------------------------------------------------------------------------
local thunk, trace

-- gopher-lua's stackTrace: innermost first; Go functions as "[G]: in function 'name'", the callback (its
-- caller is Go) as "in main chunk", then "[G]: ?"; more than 20 lines keep the first and last 7. Library
-- functions and this glue (chunks named "=[nkreplay ...]") stand in for Go functions: each run of them is
-- one [G] line named as the handler called it.
-- The frames are read in the error handler, on the failed stack, and written out once it has unwound: after
-- a stack overflow LuaJIT leaves the handler room for little more than the reading.
local function stack_frames(first_level)
  local frames = {}
  local level = first_level
  while true do
    local info = debug_getinfo(level, "Slnf")
    if info == nil or info.func == thunk then break end
    frames[#frames + 1] = info
    level = level + 1
  end
  return frames
end

local function traceback(frames)
  local lines = {}
  local last = #frames -- the callback: gopher-lua's tail calls reuse the frame, Lua adds "(tail call)" levels
  while last > 1 and frames[last].what == "tail" do last = last - 1 end
  for i, info in raw_ipairs(frames) do
    local caller = frames[i + 1]
    if i == last then caller = nil end
    if info.what == "tail" then
      lines[#lines + 1] = "\t(tailcall): ?"
    elseif is_internal(info) then
      if caller == nil or not is_internal(caller) then
        lines[#lines + 1] = "\t[G]: in function '" .. (info.name or "?") .. "'"
      end
    else
      local src = info.source
      local c = str_sub(src, 1, 1)
      if c == "@" or c == "=" then src = str_sub(src, 2) end
      local what
      if caller == nil then
        what = "main chunk"
      elseif info.name ~= nil and not is_internal(caller) then
        what = "function '" .. info.name .. "'"
      else
        what = "function <" .. src .. ":" .. number_string(info.linedefined) .. ">"
      end
      lines[#lines + 1] = "\t" .. src .. ":" .. number_string(info.currentline) .. ": in " .. what
    end
  end
  lines[#lines + 1] = "\t[G]: ?"
  if #lines > 20 then
    local short = {}
    for i = 1, 7 do short[#short + 1] = lines[i] end
    short[#short + 1] = "\t..."
    for i = #lines - 6, #lines do short[#short + 1] = lines[i] end
    lines = short
  end
  return "stack traceback:\n" .. concat(lines, "\n")
end

local STACK_DEEP = 1000 -- frames: a stack overflow has thousands (LuaJIT: about 22,000 of a one-line function)
local function on_error(e)
  if hung[1] or host_is_hung(e) then
    hung[1] = true
    trace = nil
    return e
  end
  -- LuaJIT words a Lua stack overflow without a position; gopher-lua puts the raising line in front
  if e == "stack overflow" and debug_getinfo(STACK_DEEP, "l") ~= nil then e = where(2) .. " " .. e end
  -- the hook's call into Python needs stack room a full stack does not have (api.invoke clears the hook
  -- right after: this walk is bounded)
  debug_sethook()
  -- levels: 1 stack_frames, 2 pcall, 3 on_error, 4 the function that raised
  local ok, frames = raw_pcall(stack_frames, 4)
  trace = ok and frames or nil
  return e
end

-- invoke(fn, args...) -> true, n, results...  |  false, error value, traceback, hung
function api.invoke(fn, ...)
  local args = pack(...)
  hung[1], hung[2] = false, nil
  thunk = function() return pack(fn(raw_unpack(args, 1, args.n))) end
  debug_sethook(hook, "", HOOK_EVERY)
  local ok, r = raw_xpcall(thunk, on_error)
  debug_sethook()
  thunk = nil
  if ok then return true, r.n, raw_unpack(r, 1, r.n) end
  local frames = trace
  trace = nil
  return false, r, frames and traceback(frames), hung[1]
end

-- the innermost frame of the handler's own code on the stack now ("" when none): the chunk name of the
-- first Lua function that is not a library function or this glue (a host function asking from inside a
-- dispatcher call finds the handler line that called it)
function api.handler_frame()
  local level = 2
  while true do
    local info = debug_getinfo(level, "Sl")
    if info == nil then return "" end
    if not is_internal(info) and info.what ~= "tail" and info.currentline >= 0 then
      local src = info.source
      local c = str_sub(src, 1, 1)
      if c == "@" or c == "=" then src = str_sub(src, 2) end
      return src
    end
    level = level + 1
  end
end

-- text of an error value as gopher-lua's ApiError prints it
function api.error_text(e)
  if raw_type(e) == "string" then return e end
  if raw_type(e) == "number" then return number_string(e) end
  if POINTER_TYPES[raw_type(e)] then return pointer_text(e) end
  return raw_tostring(e)
end

-- load the match module the way Nakama does: require(name), a table of seven functions
function api.load_module(name)
  local ok, m = raw_pcall(require, name)
  if not ok then return false, api.error_text(m) end
  return true, m
end

function api.rawget(t, k)
  return raw_rawget(t, k)
end

function api.type(v)
  return raw_type(v)
end

return api
