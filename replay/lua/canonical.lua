-- The canonical bytes of a Lua state (recorder/format/_canonical.py), written in Lua: the state digest of
-- every tick without turning the state into Python data first (a lupa crossing per table entry).
--
-- encode(state) returns the bytes recorder.format.canonical_bytes(lua_to_plain(state)) would give, or nil
-- when the state holds something this fast path leaves to that reference path: a string with a byte above
-- 0x7f (UTF-8 checks, Go's replacement of invalid bytes) or a pointer text (": 0x"), a NaN, a function,
-- userdata or thread (their address texts), a non-string key of a table without an array part, or a table
-- nested deeper than 256 (a cycle ends there too). The rules it follows, as lua_to_plain and canonicalize
-- apply them: a table with a positive whole key below 2^26 is an array from 1 to the highest such key
-- (other keys dropped, holes nil); any other table a map, keys sorted by their bytes; the empty table the
-- empty map; every number float64 (-0 as 0); strings msgpack str. Loaded before the prelude, so it holds
-- the original library functions whatever a handler does to the globals.
--
-- What it keeps between calls, none of it trusted without a check:
--   the bytes of numbers and strings seen as values and of keys (memos, emptied when they grow large);
--   each map's sorted keys with their bytes ("shapes", weakly keyed by the table): used only when the
--   table's string keys are, this call, exactly the shape's (same count, each key found in it), so a
--   shape can only save the sort, never change the bytes.
-- Nothing that depends on a table's values is kept: every value is read and written again on every call.

local raw_next, raw_rawget, raw_type, raw_error, raw_pcall = next, rawget, type, error, pcall
local raw_getmetatable, raw_setmetatable = getmetatable, setmetatable
local char, find = string.char, string.find
local floor, frexp, huge = math.floor, math.frexp, math.huge
local sort, concat = table.sort, table.concat

local MAX_ARRAY_INDEX = 67108864
local ZERO = char(0xcb, 0, 0, 0, 0, 0, 0, 0, 0)
local NIL, TRUE, FALSE, EMPTY_MAP = "\192", "\195", "\194", "\128"
local GIVE_UP = {} -- raised through the walk when the state is the reference path's

local function f64(x)
  local sign = 0
  if x < 0 then sign, x = 128, -x end
  local e, m = 0, 0
  if x == huge then
    e = 2047
  else
    local frac, exp = frexp(x) -- x = frac * 2^exp, 0.5 <= frac < 1
    e = exp + 1022
    if e <= 0 then -- subnormal: the mantissa is x / 2^-1074 (in two exact steps: 2^1074 is no double)
      m, e = x * 2 ^ 1022 * 2 ^ 52, 0
    else
      m = (frac * 2 - 1) * 4503599627370496 -- 2^52
    end
  end
  local hi = floor(m / 4294967296) -- the top 20 bits of the mantissa
  local lo = m - hi * 4294967296
  return char(
    0xcb,
    sign + floor(e / 16),
    (e % 16) * 16 + floor(hi / 65536),
    floor(hi / 256) % 256,
    hi % 256,
    floor(lo / 16777216),
    floor(lo / 65536) % 256,
    floor(lo / 256) % 256,
    lo % 256
  )
end

local function str_head(n)
  if n < 32 then return char(0xa0 + n) end
  if n < 256 then return char(0xd9, n) end
  if n < 65536 then return char(0xda, floor(n / 256), n % 256) end
  return char(0xdb, floor(n / 16777216), floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end

local function container_head(n, fix, b16, b32)
  if n < 16 then return char(fix + n) end
  if n < 65536 then return char(b16, floor(n / 256), n % 256) end
  return char(b32, floor(n / 16777216), floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end

local MAP_HEAD, ARRAY_HEAD = {}, {} -- the heads of small containers
for i = 0, 15 do
  MAP_HEAD[i], ARRAY_HEAD[i] = container_head(i, 0x80, 0xde, 0xdf), container_head(i, 0x90, 0xdc, 0xdd)
end

-- the bytes of values (numbers, strings up to 256 bytes, booleans) and of keys: ids, names, keys and whole
-- numbers repeat from tick to tick. Keys are not masked for pointer texts, values are: two memos.
local memo, memo_size, keys_memo, keys_size

local function reset_memo()
  memo, memo_size = { [true] = TRUE, [false] = FALSE }, 0
end
reset_memo()
keys_memo, keys_size = {}, 0

-- a number's or string's bytes, memoised; nil when the reference path must write it (NaN: its bits are
-- that path's to keep; a byte above 0x7f or a pointer text; any other type)
local function scalar(v)
  local tv = raw_type(v)
  local b
  if tv == "number" then
    if v ~= v then return nil end
    if v == 0 then return ZERO end -- -0 as 0
    b = f64(v)
  elseif tv == "string" then
    if find(v, "[\128-\255]") or find(v, ": 0x", 1, true) then return nil end
    b = str_head(#v) .. v
    if #v > 256 then return b end -- long texts are not kept
  else
    return nil
  end
  if memo_size >= 4096 then reset_memo() end
  memo[v] = b
  memo_size = memo_size + 1
  return b
end

local function key_bytes(k)
  if find(k, "[\128-\255]") then return nil end
  local b = str_head(#k) .. k
  if #k > 256 then return b end
  if keys_size >= 4096 then keys_memo, keys_size = {}, 0 end
  keys_memo[k] = b
  keys_size = keys_size + 1
  return b
end

local shapes = raw_setmetatable({}, { __mode = "k" })
local out = {} -- the output's pieces

-- write table t into out[n + 1...] and return the new n; raises GIVE_UP for the reference path
local function walk(t, depth, n)
  if depth > 256 then raw_error(GIVE_UP) end
  local o = out
  local maxn, nn, ns, other = 0, 0, 0, false
  local shape = shapes[t]
  for k in raw_next, t do
    if raw_type(k) == "string" then
      ns = ns + 1
      if shape and shape[k] == nil then shape = nil end
    elseif raw_type(k) == "number" and k > 0 and k < MAX_ARRAY_INDEX and k % 1 == 0 then
      nn = nn + 1
      if k > maxn then maxn = k end
    else
      other = true
    end
  end
  local plain = raw_getmetatable(t) == nil -- then t[k] is rawget(t, k)
  depth = depth + 1
  -- a sparse array of millions of nils (t[2^26] = 1) would overflow the pieces table: the reference writes it
  if maxn > 4 * nn and n + maxn > 4194304 then raw_error(GIVE_UP) end
  if maxn > 0 then -- an array: the other keys are dropped, as lua_to_plain drops them
    n = n + 1
    o[n] = ARRAY_HEAD[maxn] or container_head(maxn, 0x90, 0xdc, 0xdd)
    for i = 1, maxn do
      local v
      if plain then v = t[i] else v = raw_rawget(t, i) end
      if v == nil then
        n = n + 1
        o[n] = NIL
      else
        local b = memo[v]
        if b then
          n = n + 1
          o[n] = b
        elseif raw_type(v) == "table" then
          n = walk(v, depth, n)
        else
          b = scalar(v)
          if not b then raw_error(GIVE_UP) end
          n = n + 1
          o[n] = b
        end
      end
    end
    return n
  end
  if other then raw_error(GIVE_UP) end
  if ns == 0 then
    n = n + 1
    o[n] = EMPTY_MAP
    return n
  end
  if shape == nil or shape[0] ~= ns then -- keys sorted by their bytes (LuaJIT's <)
    shape = {}
    local i = 0
    for k in raw_next, t do
      i = i + 1
      shape[i] = k
    end
    if ns > 1 then sort(shape) end
    for j = 1, ns do
      local k = shape[j]
      shape[k] = keys_memo[k] or key_bytes(k) or raw_error(GIVE_UP)
    end
    shape[0] = ns
    shapes[t] = shape
  end
  n = n + 1
  o[n] = MAP_HEAD[ns] or container_head(ns, 0x80, 0xde, 0xdf)
  for j = 1, ns do
    local k = shape[j]
    n = n + 1
    o[n] = shape[k]
    local v
    if plain then v = t[k] else v = raw_rawget(t, k) end
    local b = memo[v]
    if b then
      n = n + 1
      o[n] = b
    elseif raw_type(v) == "table" then
      n = walk(v, depth, n)
    else
      b = scalar(v)
      if not b then raw_error(GIVE_UP) end
      n = n + 1
      o[n] = b
    end
  end
  return n
end

local written = 0 -- pieces written by the last call

local function whole(v)
  local n
  if raw_type(v) == "table" then
    n = walk(v, 0, 0)
  elseif v == nil then
    n = 1
    out[1] = NIL
  else
    local b = memo[v] or scalar(v)
    if not b then return nil end
    n = 1
    out[1] = b
  end
  written = n
  return concat(out, "", 1, n)
end

local function encode(v)
  written = 0
  local ok, r = raw_pcall(whole, v)
  if written > 4096 or not ok then out = {} end -- let a large state's pieces go
  if ok then return r end
  if r == GIVE_UP then return nil end
  raw_error(r, 0)
end

-- the state in LuaJIT's serialization format (string.buffer.encode: C, raw reads, no metamethods), or nil
-- where the serializer refuses it; replay/lua/_serialized.py rewrites it into the canonical bytes (the prelude
-- takes string.buffer out of package.loaded again: handlers never reach it)
local buffer_encode = require("string.buffer").encode

local function serialize(v)
  local ok, s = raw_pcall(buffer_encode, v)
  if ok then return s end
  return nil
end

return encode, serialize
