-- The Lua twin of fuzz_goodbye.py: says goodbye to the presences that just left (no longer in the match,
-- so Nakama drops the message: the fuzz checks report a broadcast to an absent presence), and decodes
-- every op code 5 message as JSON (nk.json_decode raises on data that is not JSON).
local nk = require("nakama")

local M = {}

function M.match_init(context, params)
  return { seen = 0 }, 10, ""
end

function M.match_join_attempt(context, dispatcher, tick, state, presence, metadata)
  return state, true
end

function M.match_join(context, dispatcher, tick, state, presences)
  return state
end

function M.match_leave(context, dispatcher, tick, state, presences)
  dispatcher.broadcast_message(99, "bye", presences)
  return state
end

function M.match_loop(context, dispatcher, tick, state, messages)
  for _, m in ipairs(messages) do
    if m.op_code == 5 then
      nk.json_decode(m.data or "")
    end
  end
  state.seen = state.seen + #messages
  return state
end

function M.match_terminate(context, dispatcher, tick, state, grace_seconds)
  return state
end

function M.match_signal(context, dispatcher, tick, state, data)
  return state, data
end

return M
