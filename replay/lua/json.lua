-- nk.json_decode and nk.json_encode in Lua for the common cases, without crossing to Python and back once
-- per value; each gives what the host path (replay.lua._nk) gives, or nil to leave the value to it.
--
-- decode(s): the tables the host path (json.loads, then LuaHandler._to_lua) would build. It returns the table, or nil when s is anything else (then the host path decodes it, its errors
-- included): only an object or an array at the top; strings of printable ASCII without escapes; numbers
-- in JSON's grammar (integers of at most 18 digits: wider ones take other paths in _to_lua); no duplicate
-- key; at most 200 levels. Numbers are Lua's tonumber of the text (strtod, correctly rounded, as Python's
-- float() and the int64-to-double conversion are), except "-0", which json.loads reads as the integer 0.
-- Values are set in the order _to_lua sets them (json.loads keeps a key at its first position; null
-- values and nulls in arrays are skipped, an array's index counting them), so the tables are laid out
-- alike and pairs() walks them in the same order. Loaded before the prelude: the original tonumber.
local find, sub, format = string.find, string.sub, string.format
local raw_tonumber, raw_rawget, raw_next, raw_type, raw_getmetatable = tonumber, rawget, next, type, getmetatable
local sort, concat = table.sort, table.concat

local NULL = {}
local MAX_DEPTH = 200
local WS = "[ \t\n\r]*"
local TEXT = '"([]-~ !#-[]*)"' -- printable ASCII but " and \
local FIRST_KEY = "^" .. WS .. TEXT .. WS .. ":" .. WS .. "(.)" -- a key and the first character of its value
local NEXT_KEY = "^" .. WS .. "," .. WS .. TEXT .. WS .. ":" .. WS .. "(.)"
local FIRST_ITEM, NEXT_ITEM = "^" .. WS .. "(.)", "^" .. WS .. "," .. WS .. "(.)"
local NUMBER = "^((%-?)(%d)(%d*)(%.?%d*)([eE]?[-+]?%d*))"
local STRING, SPACE, OBJECT_END, ARRAY_END = "^" .. TEXT, "^" .. WS, "^" .. WS .. "}", "^" .. WS .. "%]"
local value

-- one value, c its first character, at pos: the value (NULL for null) and the position after it, or nil
value = function(s, pos, c, depth)
  if c == '"' then
    local _, e, text = find(s, STRING, pos)
    if e == nil then return nil end
    return text, e + 1
  elseif c == "{" then
    if depth >= MAX_DEPTH then return nil end
    local t, nulls = {}, nil
    local _, e, k, vc = find(s, FIRST_KEY, pos + 1)
    if e == nil then
      _, e = find(s, OBJECT_END, pos + 1)
      if e == nil then return nil end
      return t, e + 1
    end
    while true do
      local v
      v, pos = value(s, e, vc, depth + 1)
      if v == nil then return nil end
      if raw_rawget(t, k) ~= nil or (nulls and nulls[k]) then return nil end -- a duplicate key
      if v == NULL then
        if nulls == nil then nulls = {} end
        nulls[k] = true
      else
        t[k] = v
      end
      _, e, k, vc = find(s, NEXT_KEY, pos)
      if e == nil then
        _, e = find(s, OBJECT_END, pos)
        if e == nil then return nil end
        return t, e + 1
      end
    end
  elseif c == "[" then
    if depth >= MAX_DEPTH then return nil end
    local t, i = {}, 0
    local _, e, vc = find(s, FIRST_ITEM, pos + 1)
    if vc == "]" then return t, e + 1 end
    while e ~= nil do
      local v
      v, pos = value(s, e, vc, depth + 1)
      if v == nil then return nil end
      i = i + 1
      if v ~= NULL then t[i] = v end
      _, e, vc = find(s, NEXT_ITEM, pos)
      if e == nil then
        _, e = find(s, ARRAY_END, pos)
        if e == nil then return nil end
        return t, e + 1
      end
    end
    return nil
  elseif c == "t" then
    if sub(s, pos, pos + 3) == "true" then return true, pos + 4 end
  elseif c == "f" then
    if sub(s, pos, pos + 4) == "false" then return false, pos + 5 end
  elseif c == "n" then
    if sub(s, pos, pos + 3) == "null" then return NULL, pos + 4 end
  else -- a number, JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)?
    local _, e, text, _, first, rest, frac, exp = find(s, NUMBER, pos)
    if e == nil or frac == "." or (first == "0" and rest ~= "") then return nil end
    if exp ~= "" then
      if not find(exp, "%d$") then return nil end
    elseif frac == "" then -- an integer: json.loads's int
      if first == "0" then return 0, e + 1 end -- "-0" too: the int 0
      if #rest >= 18 then return nil end -- beyond int64 json.loads's int takes another path in _to_lua
    end
    return raw_tonumber(text), e + 1
  end
  return nil
end

local function decode(s)
  local _, e, c = find(s, FIRST_ITEM)
  if c ~= "{" and c ~= "[" then return nil end
  local v, pos = value(s, e, c, 0)
  if v == nil then return nil end
  if pos <= #s then -- whitespace only after the value
    _, e = find(s, SPACE, pos)
    if e ~= #s then return nil end
  end
  return v
end

-- encode(v): the text gojson.dumps(lua_to_plain(v)) gives (Go's encoding/json), or nil when v holds
-- something else: a string with a character outside printable ASCII or one Go escapes (" \ < > &); a
-- number that is NaN, infinite, beyond 1e15, or not whole and below 1e-4 or without a 15-digit round trip
-- (then "%.15g" is Go's shortest text: a decimal of at most 15 digits is the double's only such text); a
-- map key that is not such a string; a function, userdata or thread; more than 200 levels; a table with a
-- metatable (read raw there: left to the host path). Tables: an array from 1 to the highest positive whole
-- key below 2^26 (other keys dropped, holes null), else an object, keys in byte order (LuaJIT's < compares
-- bytes, in every locale).
local SAFE_TEXT = "^[]-~ !#-%'-;=?-[]*$" -- printable ASCII but " \ < > &
local encode_into

local function number_text(v)
  if v ~= v or v >= 1e15 or v <= -1e15 then return nil end
  if v % 1 == 0 then return format("%d", v) end -- lua_to_plain's int (-0 too: "0")
  if v < 1e-4 and v > -1e-4 then return nil end
  local text = format("%.15g", v)
  if raw_tonumber(text) ~= v then return nil end
  return text
end

encode_into = function(v, out, n, depth)
  local tv = raw_type(v)
  if tv == "string" then
    if not find(v, SAFE_TEXT) then return nil end
    out[n + 1], out[n + 2], out[n + 3] = '"', v, '"'
    return n + 3
  elseif tv == "number" then
    local text = number_text(v)
    if text == nil then return nil end
    out[n + 1] = text
    return n + 1
  elseif tv == "boolean" then
    out[n + 1] = v and "true" or "false"
    return n + 1
  elseif v == nil then
    out[n + 1] = "null"
    return n + 1
  elseif tv ~= "table" or depth >= MAX_DEPTH or raw_getmetatable(v) ~= nil then
    return nil
  end
  local maxn, keys, nkeys, other = 0, nil, 0, false
  for k in raw_next, v do
    local tk = raw_type(k)
    if tk == "string" then
      nkeys = nkeys + 1
      if keys == nil then keys = {} end
      keys[nkeys] = k
    elseif tk == "number" and k > 0 and k < 67108864 and k % 1 == 0 then
      if k > maxn then maxn = k end
    else
      other = true
    end
  end
  if maxn > 0 then
    out[n + 1] = "["
    n = n + 1
    for i = 1, maxn do
      if i > 1 then
        n = n + 1
        out[n] = ","
      end
      n = encode_into(v[i], out, n, depth + 1)
      if n == nil then return nil end
    end
    out[n + 1] = "]"
    return n + 1
  end
  if other then return nil end
  if nkeys > 1 then sort(keys) end
  out[n + 1] = "{"
  n = n + 1
  for i = 1, nkeys do
    local k = keys[i]
    if not find(k, SAFE_TEXT) then return nil end
    out[n + 1], out[n + 2], out[n + 3] = i > 1 and ',"' or '"', k, '":'
    n = encode_into(v[k], out, n + 3, depth + 1)
    if n == nil then return nil end
  end
  out[n + 1] = "}"
  return n + 1
end

local function encode(v)
  local out = {}
  local n = encode_into(v, out, 0, 0)
  if n == nil then return nil end
  return concat(out, "", 1, n)
end

return { decode = decode, encode = encode }
