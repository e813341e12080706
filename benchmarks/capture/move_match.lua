-- move_match: the capture benchmarks' game (bench_capture.py in the project's runtime, bench_capture_nakama.py
-- in a real Nakama). Players send moves (op 1, JSON {"dx": .., "dy": ..}); a tick with moves applies them
-- and broadcasts every position (op 2). A match without players idles: its loop only returns the state.
local nk = require("nakama")

local M = {}

function M.match_init(context, params)
  local rate = 10
  if type(params) == "table" and type(params.tick_rate) == "number" then rate = params.tick_rate end
  return { players = {}, order = {} }, rate, "move"
end

function M.match_join_attempt(context, dispatcher, tick, state, presence, metadata)
  return state, true
end

function M.match_join(context, dispatcher, tick, state, presences)
  for _, p in ipairs(presences) do
    if state.players[p.session_id] == nil then
      state.players[p.session_id] = { name = p.username, x = 0, y = 0 }
      state.order[#state.order + 1] = p.session_id
    end
  end
  return state
end

function M.match_leave(context, dispatcher, tick, state, presences)
  for _, p in ipairs(presences) do
    state.players[p.session_id] = nil
    for i, sid in ipairs(state.order) do
      if sid == p.session_id then
        table.remove(state.order, i)
        break
      end
    end
  end
  return state
end

function M.match_loop(context, dispatcher, tick, state, messages)
  local moved = false
  for _, m in ipairs(messages) do
    local p = state.players[m.sender.session_id]
    if m.op_code == 1 and p ~= nil then
      local move = nk.json_decode(m.data)
      p.x = p.x + (move.dx or 0)
      p.y = p.y + (move.dy or 0)
      moved = true
    end
  end
  if moved then
    local positions = {}
    for i, sid in ipairs(state.order) do
      local p = state.players[sid]
      positions[i] = { p.name, p.x, p.y }
    end
    dispatcher.broadcast_message(2, nk.json_encode(positions))
  end
  return state
end

function M.match_terminate(context, dispatcher, tick, state, grace_seconds)
  return state
end

function M.match_signal(context, dispatcher, tick, state, data)
  return state, "ok"
end

return M
