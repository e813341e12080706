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
local find, byte, sub = string.find, string.byte, string.sub
local raw_tonumber, raw_rawget = tonumber, rawget

local NULL = {}
local MAX_DEPTH = 200
local value

-- one value starting at pos (no whitespace before it): the value (NULL for null) and the position after
-- it, or nil
value = function(s, pos, depth)
  local c = byte(s, pos)
  if c == 34 then -- "
    local _, e, text = find(s, '^"([]-~ !#-[]*)"', pos)
    if e == nil then return nil end
    return text, e + 1
  elseif c == 123 then -- {
    if depth >= MAX_DEPTH then return nil end
    local t, nulls = {}, nil
    local _, e = find(s, "^[ \t\n\r]*}", pos + 1)
    if e then return t, e + 1 end
    pos = pos + 1
    while true do
      local _, e, k = find(s, '^[ \t\n\r]*"([]-~ !#-[]*)"[ \t\n\r]*:[ \t\n\r]*', pos)
      if e == nil then return nil end
      local v
      v, pos = value(s, e + 1, depth + 1)
      if v == nil then return nil end
      if raw_rawget(t, k) ~= nil or (nulls and nulls[k]) then return nil end -- a duplicate key
      if v == NULL then
        if nulls == nil then nulls = {} end
        nulls[k] = true
      else
        t[k] = v
      end
      local _, e, sep = find(s, "^[ \t\n\r]*([,}])", pos)
      if e == nil then return nil end
      pos = e + 1
      if sep == "}" then return t, pos end
    end
  elseif c == 91 then -- [
    if depth >= MAX_DEPTH then return nil end
    local t, i = {}, 0
    local _, e = find(s, "^[ \t\n\r]*%]", pos + 1)
    if e then return t, e + 1 end
    pos = pos + 1
    while true do
      local _, e = find(s, "^[ \t\n\r]*", pos)
      local v
      v, pos = value(s, e + 1, depth + 1)
      if v == nil then return nil end
      i = i + 1
      if v ~= NULL then t[i] = v end
      local _, e, sep = find(s, "^[ \t\n\r]*([,%]])", pos)
      if e == nil then return nil end
      pos = e + 1
      if sep == "]" then return t, pos end
    end
  elseif c == 116 then -- t
    if sub(s, pos, pos + 3) == "true" then return true, pos + 4 end
  elseif c == 102 then -- f
    if sub(s, pos, pos + 4) == "false" then return false, pos + 5 end
  elseif c == 110 then -- n
    if sub(s, pos, pos + 3) == "null" then return NULL, pos + 4 end
  elseif c == 45 or (c and c >= 48 and c <= 57) then -- - or a digit
    local _, e, int, frac, exp = find(s, "^(%-?%d+)(%.?%d*)([eE]?[-+]?%d*)", pos)
    if e == nil or frac == "." then return nil end
    local first = byte(int, 1) == 45 and 2 or 1
    if #int > first and byte(int, first) == 48 then return nil end -- a leading zero
    if exp ~= "" and not find(exp, "^[eE][-+]?%d+$") then return nil end
    if frac == "" and exp == "" then
      if int == "-0" then return 0, e + 1 end -- json.loads: the int 0
      if #int - first >= 18 then return nil end -- beyond int64 json.loads's int takes another path in _to_lua
    end
    return raw_tonumber(sub(s, pos, e)), e + 1
  end
  return nil
end

return function(s)
  local _, e = find(s, "^[ \t\n\r]*")
  local c = byte(s, e + 1)
  if c ~= 123 and c ~= 91 then return nil end
  local v, pos = value(s, e + 1, 0)
  if v == nil then return nil end
  _, e = find(s, "^[ \t\n\r]*", pos)
  if e ~= #s then return nil end
  return v
end
