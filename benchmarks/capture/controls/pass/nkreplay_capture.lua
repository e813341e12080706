-- control (bench_capture_nakama.py --compare-module): a pass-through wrapper: one more Lua call per loop tick, one
-- pcall (what any recorder needs to see the handler's error before Nakama's crash line), nothing recorded
local raw_pcall, raw_error = pcall, error
local C = {}
function C.wrap(M)
  local L = {}
  for k, v in pairs(M) do L[k] = v end
  local loop = M.match_loop
  local function after(ok, state, ...)
    if not ok then raw_error(state, 0) end
    return state, ...
  end
  L.match_loop = function(context, dispatcher, tick, state, messages)
    return after(raw_pcall(loop, context, dispatcher, tick, state, messages))
  end
  return L
end
return C
