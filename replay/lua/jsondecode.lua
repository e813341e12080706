-- nk.json_decode in Lua for the common case: the tables the host path (replay.lua._nk: json.loads, then
-- LuaHandler._to_lua) would build, built here without crossing to Python and back once per value.
--
-- decode(s) returns the table, or nil when s is anything else (then the host path decodes it, its errors
-- included): only an object or an array at the top; strings of printable ASCII without escapes; numbers
-- in JSON's grammar (integers of at most 18 digits: wider ones take other paths in _to_lua); no duplicate
-- key; at most 200 levels. Numbers are Lua's tonumber of the text (strtod, correctly rounded, as Python's
-- float() and the int64-to-double conversion are), except "-0", which json.loads reads as the integer 0.
-- Values are set in the order _to_lua sets them (json.loads keeps a key at its first position; null
-- values and nulls in arrays are skipped, an array's index counting them), so the tables are laid out
-- alike and pairs() walks them in the same order. Loaded before the prelude: the original tonumber.
local find, sub = string.find, string.sub
local raw_tonumber, raw_rawget = tonumber, rawget

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

return function(s)
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
