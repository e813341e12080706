-- The canonical bytes of a Lua state (recorder/format/_canonical.py), written in Lua: the state digest of
-- every tick without turning the state into Python data first (a lupa crossing per table entry).
--
-- encode(state) returns the bytes recorder.format.canonical_bytes(lua_to_plain(state)) would give, or nil
-- when the state holds something this fast path leaves to that reference path: a string with a byte above
-- 0x7f (UTF-8 checks, Go's replacement of invalid bytes) or a pointer text (": 0x"), a NaN, a function,
-- userdata or thread (their address texts), a non-string key of a table without an array part, or a table
-- nested deeper than 256. The rules it follows, as lua_to_plain and canonicalize apply them:
--   a table with a positive whole key below 2^26 is an array from 1 to the highest such key (other keys
--   dropped, holes nil); any other table a map, keys sorted by their bytes; the empty table the empty map;
--   every number float64 (-0 as 0); strings msgpack str. Loaded before the prelude, so it holds the
--   original library functions whatever a handler does to the globals.

local raw_next, raw_rawget, raw_type = next, rawget, type
local char, find = string.char, string.find
local floor, frexp, huge = math.floor, math.frexp, math.huge
local sort, concat = table.sort, table.concat

local MAX_ARRAY_INDEX = 67108864
local ZERO = char(0xcb, 0, 0, 0, 0, 0, 0, 0, 0)

-- float64 bytes of a number, memoised (whole numbers and positions repeat from tick to tick)
local numbers, numbers_size = {}, 0

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

local function number(x)
  if x ~= x then return nil end -- NaN: its bits are the reference path's to keep
  if x == 0 then return ZERO end
  local b = numbers[x]
  if b == nil then
    b = f64(x)
    if numbers_size >= 65536 then numbers, numbers_size = {}, 0 end
    numbers[x] = b
    numbers_size = numbers_size + 1
  end
  return b
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

-- msgpack str of a string, memoised (ids, names and keys repeat from tick to tick); false: not plain
-- (a byte above 0x7f, or for a value a pointer text); keys are not masked, so they have their own memo
local values, values_size, keys_memo, keys_size = {}, 0, {}, 0

local function value_string(s)
  local b = values[s]
  if b == nil then
    if find(s, "[\128-\255]") or find(s, ": 0x", 1, true) then
      b = false
    else
      b = str_head(#s) .. s
    end
    if values_size >= 65536 then values, values_size = {}, 0 end
    values[s] = b
    values_size = values_size + 1
  end
  return b
end

local function key_string(s)
  local b = keys_memo[s]
  if b == nil then
    b = not find(s, "[\128-\255]") and str_head(#s) .. s
    if keys_size >= 65536 then keys_memo, keys_size = {}, 0 end
    keys_memo[s] = b
    keys_size = keys_size + 1
  end
  return b
end

local encode_into

-- one value into out[n + 1...]; returns the new n, or nil for the reference path
local function value_into(v, out, n, depth)
  local tv = raw_type(v)
  local b
  if tv == "number" then
    b = numbers[v] or number(v)
  elseif tv == "string" then
    b = value_string(v)
  elseif tv == "table" then
    return encode_into(v, out, n, depth)
  elseif tv == "boolean" then
    b = v and "\195" or "\194"
  elseif tv == "nil" then
    b = "\192"
  end
  if not b then return nil end
  n = n + 1
  out[n] = b
  return n
end

encode_into = function(t, out, n, depth)
  if raw_type(t) ~= "table" then return value_into(t, out, n, depth) end
  if depth > 256 then return nil end
  local maxn, keys, nkeys, other = 0, nil, 0, false
  for k in raw_next, t do
    local tk = raw_type(k)
    if tk == "string" then
      nkeys = nkeys + 1
      if keys == nil then keys = {} end
      keys[nkeys] = k
    elseif tk == "number" and k > 0 and k < MAX_ARRAY_INDEX and k == floor(k) then
      if k > maxn then maxn = k end
    else
      other = true
    end
  end
  depth = depth + 1
  if maxn > 0 then -- an array: the other keys are dropped, as lua_to_plain drops them
    n = n + 1
    out[n] = container_head(maxn, 0x90, 0xdc, 0xdd)
    for i = 1, maxn do
      n = value_into(raw_rawget(t, i), out, n, depth)
      if n == nil then return nil end
    end
    return n
  end
  if other then return nil end
  n = n + 1
  out[n] = container_head(nkeys, 0x80, 0xde, 0xdf)
  if nkeys == 0 then return n end
  if nkeys > 1 then sort(keys) end -- ASCII keys (checked below): byte order, the caller checks strcoll's
  for i = 1, nkeys do
    local k = keys[i]
    local kb = key_string(k)
    if not kb then return nil end
    n = n + 1
    out[n] = kb
    n = value_into(raw_rawget(t, k), out, n, depth)
    if n == nil then return nil end
  end
  return n
end

local function encode(v)
  local out = {}
  local n = encode_into(v, out, 0, 0)
  if n == nil then return nil end
  return concat(out, "", 1, n)
end

return encode
