// nakama_js_crash: crash reports from a game built on @heroiclabs/nakama-js, in nakama-replay's client
// report schema (docs/triage.md), for `nakama-replay triage ingest --client-reports`.
//
//   import { captureCrashes } from "./nakama_js_crash.mjs";
//   const socket = client.createSocket();
//   const crashes = captureCrashes(socket, { session, client, clientVersion: "1.4.0", platform: "webgl",
//                                            onReport: (report) => sendToYourBackend(report) });
//   socket.onmatchdata = (m) => { ... };      // handlers set before or after: both are watched
//   await socket.connect(session);
//
// It watches the socket without changing what the game sees: every handler the game sets on the socket
// (onmatchdata, onmatchpresence, ondisconnect, onerror, onnotification, ...) runs inside a wrapper that keeps
// the socket state (connecting / connected / reconnecting / closed, session validity, ms since the last
// message, reconnect in progress), the match (id, presence count, last tick when `tickOf` can read one),
// the last op code received and its size, the last RPC (error, unexpected shape) and the last storage read.
// When a handler throws (or the promise it returns rejects) it builds a report and calls `onReport`; by
// default the error is then swallowed as nakama-js would otherwise lose it inside its message loop
// (`rethrow: true` throws it again). `crashes.guard(name, fn)` runs any other game code the same way
// (an RPC's result handling: `guard("rpc:get_loadout", async () => ...)`; a throw there after an RPC that
// succeeded marks `rpc_unexpected_shape`). `crashes.report(error, handler)` reports by hand.
//
// Tokens never reach a report. Reports carry no payloads, only op codes and sizes.

const HANDLERS = [
  "ondisconnect", "onerror", "onchannelmessage", "onchannelpresence", "onnotification", "onmatchdata",
  "onmatchpresence", "onmatchmakerticket", "onmatchmakermatched", "onpartydata", "onpartypresence",
  "onstatuspresence", "onstreampresence", "onstreamdata", "onheartbeattimeout",
];

function randomId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") return globalThis.crypto.randomUUID();
  return "r-" + Date.now().toString(16) + "-" + Math.floor(Math.random() * 2 ** 48).toString(16);
}

function dataSize(data) {
  if (data == null) return 0;
  if (typeof data === "string") return Math.floor((data.replace(/=+$/, "").length * 3) / 4); // base64 on the wire
  if (data.byteLength !== undefined) return data.byteLength;
  return 0;
}

export function captureCrashes(socket, options = {}) {
  const now = options.now || (() => Date.now());
  const onReport = options.onReport || ((report) => console.error(JSON.stringify(report)));
  const st = {
    session: options.session, socketState: "closed", everConnected: false, reconnecting: false, lastMessageAt: null,
    matchId: undefined, tick: undefined, presenceCount: undefined, selfSessionId: undefined, opCode: undefined,
    opCodeSize: undefined, rpcId: undefined, rpcError: undefined, rpcUnexpectedShape: undefined,
    storageCollection: undefined, storageKey: undefined, storageOk: undefined,
  };

  function build(error, handler) {
    const err = error instanceof Error ? error : new Error(String(error));
    const session = st.session;
    const report = {
      schema: 1, id: randomId(), side: "client", timestamp: new Date(now()).toISOString(),
      session_id: st.selfSessionId, user_id: session && session.user_id, match_id: st.matchId, tick: st.tick,
      presence_count: st.presenceCount, op_code: st.opCode, op_code_size: st.opCodeSize, rpc_id: st.rpcId,
      rpc_error: st.rpcError, rpc_unexpected_shape: st.rpcUnexpectedShape, socket_state: st.socketState,
      session_valid: session && typeof session.isexpired === "function" ? !session.isexpired(now() / 1000) : undefined,
      ms_since_last_message: st.lastMessageAt == null ? undefined : Math.max(0, Math.round(now() - st.lastMessageAt)),
      reconnecting: st.reconnecting, storage_collection: st.storageCollection, storage_key: st.storageKey,
      storage_ok: st.storageOk, client_version: options.clientVersion, platform: options.platform, handler,
      error_type: err.name || "Error", error_message: err.message || String(error), stack_trace: err.stack,
    };
    for (const key of Object.keys(report)) if (report[key] === undefined || report[key] === null) delete report[key];
    return report;
  }

  function report(error, handler) {
    if (handler && handler.startsWith("rpc:") && st.rpcError === false) st.rpcUnexpectedShape = true;
    const r = build(error, handler);
    try { onReport(r); } catch (_) { /* a failing sink must not crash the game */ }
    return r;
  }

  function run(handler, fn, args) {
    try {
      const out = fn(...args);
      if (out && typeof out.then === "function") {
        return out.catch((error) => { report(error, handler); if (options.rethrow) throw error; });
      }
      return out;
    } catch (error) {
      report(error, handler);
      if (options.rethrow) throw error;
      return undefined;
    }
  }

  function track(name, arg) {
    if (name !== "ondisconnect" && name !== "onerror") st.lastMessageAt = now();
    if (name === "onmatchdata" && arg) {
      st.opCode = Number(arg.op_code);
      st.opCodeSize = dataSize(arg.data);
      if (arg.match_id) st.matchId = arg.match_id;
      if (options.tickOf) {
        try { const t = options.tickOf(arg); if (Number.isInteger(t)) st.tick = t; } catch (_) { /* not a tick */ }
      }
    } else if (name === "onmatchpresence" && arg && st.presenceCount !== undefined) {
      const others = (list) => (list || []).filter((p) => p.session_id !== st.selfSessionId).length;
      st.presenceCount += others(arg.joins) - others(arg.leaves); // Nakama tells a joiner of its own join too
    } else if (name === "ondisconnect") {
      st.socketState = "closed";
    }
  }

  for (const name of HANDLERS) {
    let user = socket[name];
    const wrapped = function (arg) {
      track(name, arg);
      return run(name, user.bind(socket), [arg]);
    };
    Object.defineProperty(socket, name, {
      configurable: true, enumerable: true,
      get() { return wrapped; },
      set(fn) { user = fn; },
    });
  }

  const connect = socket.connect.bind(socket);
  socket.connect = function (session, ...rest) {
    st.session = session || st.session;
    st.socketState = st.everConnected ? "reconnecting" : "connecting";
    const pending = connect(session, ...rest);
    // the adapter's WebSocket (set synchronously by connect): note when anything arrives, pings included
    const ws = socket.adapter && socket.adapter._socket;
    if (ws && typeof ws.onmessage === "function" && !ws.onmessage.__nkCrash) {
      const inner = ws.onmessage;
      const seen = function (evt) { st.lastMessageAt = now(); return inner.call(this, evt); };
      seen.__nkCrash = true;
      ws.onmessage = seen;
    }
    return pending.then((s) => {
      st.socketState = "connected";
      st.everConnected = true;
      return s;
    }, (error) => { st.socketState = "closed"; throw error; });
  };

  const joinMatch = socket.joinMatch.bind(socket);
  socket.joinMatch = function (matchId, ...rest) {
    if (matchId) st.matchId = matchId;
    return joinMatch(matchId, ...rest).then((match) => {
      st.matchId = match.match_id || st.matchId;
      st.presenceCount = (match.presences || []).length + 1;
      st.selfSessionId = match.self && match.self.session_id;
      return match;
    });
  };

  const rpc = socket.rpc.bind(socket);
  socket.rpc = function (id, ...rest) {
    st.rpcId = id; st.rpcError = undefined; st.rpcUnexpectedShape = undefined;
    return rpc(id, ...rest).then((r) => { st.rpcError = false; return r; }, (e) => { st.rpcError = true; throw e; });
  };

  const client = options.client;
  if (client && typeof client.readStorageObjects === "function") {
    const read = client.readStorageObjects.bind(client);
    client.readStorageObjects = function (session, request, ...rest) {
      const first = request && request.object_ids && request.object_ids[0];
      st.storageCollection = first && first.collection;
      st.storageKey = first && first.key;
      st.storageOk = undefined;
      return read(session, request, ...rest).then((r) => {
        st.storageOk = Boolean(r && r.objects && r.objects.length);
        return r;
      }, (e) => { st.storageOk = false; throw e; });
    };
  }

  return {
    report,
    guard(handler, fn) { return run(handler, fn, []); },
    setTick(tick) { st.tick = tick; },
    reconnecting(flag) { st.reconnecting = Boolean(flag); },
    state() { return build(new Error("state"), "state"); },
  };
}
