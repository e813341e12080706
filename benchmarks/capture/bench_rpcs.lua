-- bench_rpcs: the RPC bench_capture_nakama.py calls to start its matches in a real Nakama.
-- bench_capture_create {"module": NAME, "count": N, "tick_rate": R} -> {"match_ids": [...]}
local nk = require("nakama")

local function bench_capture_create(context, payload)
  local p = nk.json_decode(payload)
  local ids = {}
  for i = 1, p.count do
    ids[i] = nk.match_create(p.module, { tick_rate = p.tick_rate })
  end
  return nk.json_encode({ match_ids = ids })
end

nk.register_rpc(bench_capture_create, "bench_capture_create")
