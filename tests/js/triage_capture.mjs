// The crash capture helper (recorder/capture/clients/nakama_js_crash.mjs) on a real @heroiclabs/nakama-js client
// against `nakama-replay serve` with fixtures/handlers/wire_echo.py. Usage: node triage_capture.mjs PORT
// ana's game code has three bugs: it reads a field op code 7 data lacks, it expects another shape from the
// echo RPC, and its reconnect handler rejoins the crashed match and reads the missing result. ben sends op
// code 7, then op code 99, which crashes the match handler and closes both sockets. Prints one JSON object
// with ana's crash reports. Every wait is bounded; the process exits by itself.
import { Client } from "@heroiclabs/nakama-js";
import WebSocket from "ws";
import { captureCrashes } from "../../recorder/capture/clients/nakama_js_crash.mjs";

globalThis.WebSocket = WebSocket;
const port = process.argv[2];

function within(ms, what, promise) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))]);
}
function waitFor(pred, ms, what) {
  return within(ms, what, new Promise((resolve) => { const poll = () => (pred() ? resolve() : setTimeout(poll, 5)); poll(); }));
}

const out = { reports: [] };
try {
  const client = new Client("defaultkey", "127.0.0.1", port, false, 5000);
  const anaSession = await client.authenticateDevice("device-ana-triage-0000", true, "ana");
  const benSession = await client.authenticateDevice("device-ben-triage-0000", true, "ben");
  const ana = client.createSocket(false, false);
  const ben = client.createSocket(false, false);
  const crashes = captureCrashes(ana, {
    session: anaSession, clientVersion: "1.4.0", platform: "node", onReport: (r) => out.reports.push(r),
  });
  let closed = false;
  ana.onmatchdata = (m) => {
    if (m.op_code === 7) {
      const state = JSON.parse(new TextDecoder().decode(m.data));
      return state.players.length; // bug 1: op code 7 carries no players
    }
  };
  await within(5000, "ana connect", ana.connect(anaSession, false));
  await within(5000, "ben connect", ben.connect(benSession, false));
  const created = await within(5000, "create", ana.rpc("create_match", "{}"));
  const matchId = JSON.parse(created.payload).match_id;
  out.match_id = matchId;
  await within(5000, "ana join", ana.joinMatch(matchId));
  await within(5000, "ben join", ben.joinMatch(matchId));
  ana.ondisconnect = async () => { // bug 3: rejoins a match that is gone, reads the missing result
    closed = true;
    crashes.reconnecting(true);
    await within(5000, "reconnect", ana.connect(anaSession, false));
    const match = await ana.joinMatch(matchId).catch(() => undefined);
    return match.presences.length;
  };
  await ben.sendMatchState(matchId, 7, JSON.stringify({ x: 1 }));
  await waitFor(() => out.reports.length >= 1, 5000, "op code 7 report");
  await crashes.guard("rpc:echo", async () => { // bug 2: expects {items: [...]}
    const r = await ana.rpc("echo", JSON.stringify({ a: 1 }));
    return r.payload.items.map((x) => x.id);
  });
  await ben.sendMatchState(matchId, 99, "boom");
  await waitFor(() => closed && out.reports.length >= 3, 10000, "reconnect report");
  ana.disconnect(false);
  ben.disconnect(false);
} catch (err) {
  out.error = String(err && err.stack || err);
}
console.log(JSON.stringify(out));
process.exit(0);
