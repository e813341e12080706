// A real @heroiclabs/nakama-js client playing the echo match against `nakama-replay serve`, a proxy in
// front of it, or `nakama-replay playback`. Usage: node nakama_match.mjs PORT
// With a third argument "http-rpc" it also calls the user RPC "echo" over HTTP.
// Prints one JSON object: what each client saw (presence events, match data, close code and reason) and
// every raw envelope each socket sent and received. Every wait is bounded; the process exits by itself.
import { Client } from "@heroiclabs/nakama-js";
import WebSocket from "ws";

const port = process.argv[2];
const raw = {}; // client name -> [{dir, text}]

function socketClass(name) {
  raw[name] = [];
  return class RecordingWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener("message", (evt) => raw[name].push({ dir: "in", text: String(evt.data) }));
    }
    send(text) {
      raw[name].push({ dir: "out", text: String(text) });
      super.send(text);
    }
  };
}

function within(ms, what, promise) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]);
}

function waitFor(pred, ms, what) {
  return within(ms, what, new Promise((resolve) => {
    const poll = () => (pred() ? resolve() : setTimeout(poll, 5));
    poll();
  }));
}

async function player(name) {
  const client = new Client("defaultkey", "127.0.0.1", port, false, 5000);
  const session = await client.authenticateDevice(`device-${name}-js-0000`, true, name, { client_version: "1.4.0" });
  globalThis.WebSocket = socketClass(name);
  const socket = client.createSocket(false, false);
  const seen = { name, user_id: session.user_id, username: session.username, vars: session.vars, presences: [], data: [], close: null };
  socket.onmatchpresence = (e) => seen.presences.push({
    joins: (e.joins || []).map((p) => p.username), leaves: (e.leaves || []).map((p) => p.username) });
  socket.onmatchdata = (m) => seen.data.push({
    op_code: m.op_code, data: new TextDecoder().decode(m.data), sender: m.presence && m.presence.username });
  socket.ondisconnect = (evt) => { seen.close = { code: evt.code, reason: evt.reason }; };
  await within(5000, `${name} connect`, socket.connect(session, false));
  return { client, session, socket, seen };
}

const out = {};
try {
  const ana = await player("ana");
  const ben = await player("ben");
  if (process.argv[3] === "http-rpc") {
    out.http_rpc = await within(5000, "http rpc", ana.client.rpc(ana.session, "echo", { a: 1 }));
  }
  const created = await within(5000, "create_match", ana.socket.rpc("create_match", "{}"));
  const matchId = JSON.parse(created.payload).match_id;
  out.match_id = matchId;
  const joinedAna = await within(5000, "ana join", ana.socket.joinMatch(matchId, undefined, { client_version: "1.4.0" }));
  const joinedBen = await within(5000, "ben join", ben.socket.joinMatch(matchId, undefined, { client_version: "1.4.0" }));
  out.join = {
    ana: { size: joinedAna.size || 0, self: joinedAna.self.username, label: joinedAna.label },
    ben: { size: joinedBen.size || 0, self: joinedBen.self.username, others: joinedBen.presences.map((p) => p.username) },
  };
  await waitFor(() => ana.seen.presences.length >= 2 && ben.seen.presences.length >= 1, 5000, "presence events");
  for (let i = 0; i < 3; i++) {
    await ana.socket.sendMatchState(matchId, 1, JSON.stringify({ x: i }));
  }
  await waitFor(() => ana.seen.data.length >= 3 && ben.seen.data.length >= 3, 5000, "echoed data");
  await ben.socket.sendMatchState(matchId, 99, "boom");
  await waitFor(() => ana.seen.close && ben.seen.close, 5000, "crash close");
  out.ana = ana.seen;
  out.ben = ben.seen;
} catch (err) {
  out.error = String(err && err.stack || err);
}
out.raw = raw;
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
