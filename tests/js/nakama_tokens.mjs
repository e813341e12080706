// The real @heroiclabs/nakama-js client doing everything that puts tokens on the wire, against
// `nakama-replay serve` (usually through the recording proxy). Usage: node nakama_tokens.mjs PORT
// Authenticates, refreshes the session (POST /v2/account/session/refresh), connects the socket with the
// refreshed token, sends its tokens in rpc payloads (JSON and plain text, echoed back by rpc "echo"),
// calls rpc "issue_token" (which returns tokens), and sends its token in match data (echoed by the match).
// Prints one JSON object: every token seen, the user, and what came back. Every wait is bounded.
import { Client } from "@heroiclabs/nakama-js";
import WebSocket from "ws";

globalThis.WebSocket = WebSocket;
const port = process.argv[2];

function within(ms, what, promise) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]);
}

const out = { tokens: [] };
try {
  const client = new Client("defaultkey", "127.0.0.1", port, false, 5000);
  const session = await within(5000, "auth", client.authenticateDevice("device-tess-js-0000", true, "tess", { client_version: "2.1.0" }));
  out.tokens.push(session.token, session.refresh_token);
  await new Promise((r) => setTimeout(r, 1100)); // a new second: the refreshed tokens differ (exp, iat in s)
  await within(5000, "refresh", client.sessionRefresh(session, { client_version: "2.1.0" }));
  out.tokens.push(session.token, session.refresh_token);
  out.user_id = session.user_id;
  out.username = session.username;
  out.vars = session.vars;

  const socket = client.createSocket(false, false);
  const data = [];
  socket.onmatchdata = (m) => data.push(new TextDecoder().decode(m.data));
  await within(5000, "connect", socket.connect(session, false));
  const echoed = await within(5000, "echo json", socket.rpc("echo", JSON.stringify({ refresh_token: session.refresh_token, note: "Bearer " + session.token })));
  out.echo_json = echoed.payload;
  const plain = await within(5000, "echo text", socket.rpc("echo", "session " + session.token));
  out.echo_text = plain.payload;
  const issued = await within(5000, "issue_token", socket.rpc("issue_token", "{}"));
  const got = JSON.parse(issued.payload);
  out.tokens.push(got.token, got.refresh_token);

  const created = await within(5000, "create_match", socket.rpc("create_match", "{}"));
  out.match_id = JSON.parse(created.payload).match_id;
  await within(5000, "join", socket.joinMatch(out.match_id, undefined, { client_version: "2.1.0" }));
  await socket.sendMatchState(out.match_id, 1, JSON.stringify({ token: session.token, x: 1 }));
  await within(5000, "echoed data", new Promise((resolve) => {
    const poll = () => (data.length >= 1 ? resolve() : setTimeout(poll, 5));
    poll();
  }));
  out.data = data;
  socket.disconnect(false);
  await new Promise((r) => setTimeout(r, 200));
} catch (err) {
  out.error = String((err && err.stack) || err);
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
