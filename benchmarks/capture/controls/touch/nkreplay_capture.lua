-- control (bench_capture_nakama.py --compare-module): the pass-through wrapper that also reads every message's
-- fields into flat arrays (the least any recorder of a loop's inputs must do), dropped every 10 ticks without
-- being encoded or written
local raw_pcall, raw_error = pcall, error
local C = {}
function C.wrap(M)
  local L = {}
  for k, v in pairs(M) do L[k] = v end
  local loop = M.match_loop
  local mv, mv_n, md, md_n, first = {}, 0, {}, 0, -1
  local function after(ok, state, ...)
    if not ok then raw_error(state, 0) end
    return state, ...
  end
  L.match_loop = function(context, dispatcher, tick, state, messages)
    local m = messages[1]
    if m ~= nil then
      if first < 0 then first = tick end
      local k, d, i = mv_n, md_n, 1
      while m ~= nil do
        local p = m.sender
        local sid, uid, name, node = p.session_id, p.user_id, p.username, p.node
        d = d + 1
        md[d] = m.data
        mv[k + 1], mv[k + 2], mv[k + 3], mv[k + 4], mv[k + 5], mv[k + 6] = tick, sid, m.op_code, uid, m.reliable, m.receive_time_ms
        k = k + 6
        i = i + 1
        m = messages[i]
      end
      mv_n, md_n = k, d
      if tick - first >= 9 then mv, mv_n, md, md_n, first = {}, 0, {}, 0, -1 end
    end
    return after(raw_pcall(loop, context, dispatcher, tick, state, messages))
  end
  return L
end
return C
