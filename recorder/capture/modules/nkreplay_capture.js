// nkreplay_capture.js: record a Nakama JavaScript/TypeScript match handler's calls into the server log,
// for nakama-replay. ES5 (runs in goja, Nakama's JS engine, and in any later engine).
//
// Put this file into the bundle before your code (TypeScript: copy it beside your sources and list it
// first in tsconfig.json "files", or concatenate it in front of build/index.js) and add ONE top-level
// statement after your match functions, naming the same functions InitModule registers:
//
//   nkreplayCapture.wrap({ matchInit: arenaInit, matchJoinAttempt: arenaJoinAttempt, matchJoin: arenaJoin,
//                          matchLeave: arenaLeave, matchLoop: arenaLoop, matchTerminate: arenaTerminate,
//                          matchSignal: arenaSignal }, { module: "arena", snapshotEvery: 100 });
//
// Why top level and not inside InitModule: Nakama runs InitModule once, in a runtime of its own, only to
// learn the names of the registered functions (it reads them from the source); every match then gets a
// fresh runtime that runs the bundle's top level and calls the *global* functions of those names
// (server/runtime_javascript_match_core.go). So wrap() replaces each named global function with a
// recording wrapper, in every runtime, before Nakama freezes the globals; registerMatch stays unchanged.
//
// Every callback call becomes one JSON line logged with `logger.info("%s", "nkreplay:1 {...}")`, in the
// format of nkreplay_capture.lua: the match id (m), a sequence number (s), the kind (k), the tick (t), the
// inputs, what the call did (join verdict, tick rate and label, broadcasts, kicks, label updates, signal
// reply, a null state) and the nondeterministic values it consumed (nd: Date.now and new Date() as
// "time", Math.random as "random", nk.uuidv4 as "uuid", nk.storageRead, nk.httpRequest), in order.
// Records longer than maxLine are split into `nkreplay:1 P seq/i/n ...` parts. `nakama-replay ingest`
// turns the lines into recordings; `reproduce --handler build/index.js` replays them.
//
// The wrapped functions see and return exactly what they would unwrapped. An error a callback throws
// passes through untouched (try/finally, never caught and thrown again, so Nakama's crash line keeps the
// original stack); the record then says only that the call threw, and ingest takes the error text from
// Nakama's own crash line. A failure inside the capture is logged as a warning, never thrown.
//
// Options (all optional): module (name written into the recording), snapshotEvery (log the state, as
// JSON.stringify writes it, with every loop whose tick is a multiple; 0 = never), sample (fraction of
// matches recorded, chosen from the match id), redact (keys whose values become "[redacted]" in params,
// metadata, session vars, snapshots and storage reads), redactOpCodes (op codes whose message and
// broadcast data are not written), maxLine (longest record line before it is split; default 6000),
// mode ("full", the default: every call its own record with its outcome; or "lean", what a production server
// can afford: matchLoop calls recorded by their inputs and nondeterministic values only, several ticks per
// `k: "loops"` record, in the format of nkreplay_capture.lua's lean mode: `t` the first tick, `n` the ticks,
// `ps` the senders, `x` the ticks that had messages, nondeterministic values or an error, each
// `{"i": offset, "ms": [[sender index in ps, ...]], ...}`; empty ticks are only counted. A tick with something
// is written at most flushSeconds later, and at once when the loop throws (before Nakama's crash line) or ends
// the match; other callbacks are recorded as in full mode, the pending loops first), flushSeconds (lean: the
// longest a tick's inputs wait in memory; default 1), outcomes (lean: also record each loop's outcome; default
// false; snapshotEvery needs it in lean mode).
var nkreplayCapture = (function () {
  "use strict";
  var VERSION = 1;
  var TAG = "nkreplay:1 ";
  var G = Function("return this")();
  var CALLBACKS = ["matchInit", "matchJoinAttempt", "matchJoin", "matchLeave", "matchLoop", "matchTerminate", "matchSignal"];
  var opts = { module: "", snapshotEvery: 0, sample: 1, redact: [], redactOpCodes: [], maxLine: 6000, mode: "full",
    flushSeconds: 1, outcomes: false };
  var redactKeys = {}, redactOps = {};
  var active = null; // the call being recorded
  var matchId = null, seq = 0, enabled = true;

  function consumed(source, value) {
    if (active !== null) active.nd.push([source, value]);
  }

  // -- nondeterministic sources, patched once per runtime (pass-through outside recorded calls) ----------
  var RealDate = G.Date, realNow = RealDate.now, realRandom = Math.random;
  function CapturedDate(a, b, c, d, e, f, g) {
    var n = arguments.length;
    if (!(this instanceof CapturedDate)) return RealDate();
    if (n === 0) {
      var t = realNow();
      consumed("time", t);
      return new RealDate(t);
    }
    if (n === 1) return new RealDate(a);
    if (n === 2) return new RealDate(a, b);
    if (n === 3) return new RealDate(a, b, c);
    if (n === 4) return new RealDate(a, b, c, d);
    if (n === 5) return new RealDate(a, b, c, d, e);
    if (n === 6) return new RealDate(a, b, c, d, e, f);
    return new RealDate(a, b, c, d, e, f, g);
  }
  CapturedDate.prototype = RealDate.prototype;
  CapturedDate.now = function now() {
    var t = realNow();
    consumed("time", t);
    return t;
  };
  CapturedDate.UTC = RealDate.UTC;
  CapturedDate.parse = RealDate.parse;
  try {
    if (!G.__nkreplayCapture) {
      G.Date = CapturedDate;
      Math.random = function random() {
        var v = realRandom();
        consumed("random", v);
        return v;
      };
      G.__nkreplayCapture = true;
    }
  } catch (e) { /* read-only globals: leave them alone */ }

  // nk is Nakama's object (frozen): the handler gets one that inherits from it with three recording methods
  var nkProxies = [];
  function nkFor(nk) {
    for (var i = 0; i < nkProxies.length; i++) if (nkProxies[i][0] === nk) return nkProxies[i][1];
    var p = nk;
    try { // own properties: assigning over a frozen prototype's method would throw
      p = Object.create(nk, {
        uuidv4: { value: function uuidv4() { var v = nk.uuidv4(); consumed("uuid", v); return v; } },
        storageRead: { value: function storageRead(ids) {
          var v = nk.storageRead(ids);
          if (active !== null) consumed("storage_read", redacted(v, 0));
          return v;
        } },
        httpRequest: { value: function httpRequest(url, method, headers, body, timeout) {
          var v = nk.httpRequest(url, method, headers, body, timeout);
          consumed("http", v);
          return v;
        } },
      });
    } catch (e) { p = nk; }
    nkProxies.push([nk, p]);
    return p;
  }

  // -- options, redaction, bytes ---------------------------------------------------------------------------
  function setOptions(o) {
    o = o || {};
    for (var k in o) if (Object.prototype.hasOwnProperty.call(o, k)) opts[k] = o[k];
    redactKeys = {};
    redactOps = {};
    var i;
    for (i = 0; i < (opts.redact || []).length; i++) redactKeys[opts.redact[i]] = true;
    for (i = 0; i < (opts.redactOpCodes || []).length; i++) redactOps[opts.redactOpCodes[i]] = true;
  }
  function redacted(v, depth) {
    if (v === null || typeof v !== "object" || depth > 64) return v;
    var any = false;
    for (var key in redactKeys) { any = true; break; }
    if (!any) return v;
    if (Array.isArray(v)) return v.map(function (x) { return redacted(x, depth + 1); });
    var out = {};
    for (var k in v) {
      if (Object.prototype.hasOwnProperty.call(v, k)) out[k] = redactKeys[k] ? "[redacted]" : redacted(v[k], depth + 1);
    }
    return out;
  }
  var B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  function base64(bytes) { // bytes: an array-like of 0..255
    var out = "", i, n = bytes.length;
    for (i = 0; i + 2 < n; i += 3) {
      var x = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
      out += B64.charAt(x >> 18) + B64.charAt((x >> 12) & 63) + B64.charAt((x >> 6) & 63) + B64.charAt(x & 63);
    }
    if (n - i === 1) {
      var y = bytes[i] << 16;
      out += B64.charAt(y >> 18) + B64.charAt((y >> 12) & 63) + "==";
    } else if (n - i === 2) {
      var z = (bytes[i] << 16) | (bytes[i + 1] << 8);
      out += B64.charAt(z >> 18) + B64.charAt((z >> 12) & 63) + B64.charAt((z >> 6) & 63) + "=";
    }
    return out;
  }
  function data64(data) { // what Nakama sends: a string as its UTF-8 bytes, an ArrayBuffer as is
    if (data === undefined || data === null) return null;
    if (typeof data === "string") {
      var s = unescape(encodeURIComponent(data)), b = [];
      for (var i = 0; i < s.length; i++) b.push(s.charCodeAt(i));
      return base64(b);
    }
    if (data instanceof ArrayBuffer) return base64(new Uint8Array(data));
    return null;
  }
  function presence4(p) { return [p.userId, p.sessionId, p.username, p.node]; }
  function presence5(p) { return [p.userId, p.sessionId, p.username, p.node, p.reason || 0]; }
  function sampled(id) {
    var fraction = opts.sample === undefined ? 1 : opts.sample;
    if (fraction >= 1) return true;
    if (fraction <= 0) return false;
    var h = 2166136261; // FNV-1a of the match id
    for (var i = 0; i < id.length; i++) {
      h ^= id.charCodeAt(i);
      h = (h * 16777619) >>> 0;
    }
    return h / 4294967296 < fraction;
  }

  // -- records -------------------------------------------------------------------------------------------
  function ascii(text) { // every byte one character: a part boundary never cuts a UTF-8 sequence
    return text.replace(/[\u007f-\uffff]/g, function (c) { return "\\u" + ("0000" + c.charCodeAt(0).toString(16)).slice(-4); });
  }
  function emit(logger, record) {
    record.m = matchId;
    record.s = seq;
    seq += 1;
    var text;
    try {
      text = JSON.stringify(record);
    } catch (e) {
      if (record.o && record.o.ss !== undefined) { // the state does not encode (a cycle, a BigInt): keep the rest
        delete record.o.ss;
        record.o.ss_error = String(e);
        try { text = JSON.stringify(record); } catch (e2) { text = null; }
      }
      if (!text) text = JSON.stringify({ m: matchId, s: record.s, k: record.k, t: record.t, capture_error: String(e) });
    }
    writeLine(logger, text, record.s);
  }
  function writeLine(logger, text, s) { // one record's JSON text as a line, or as parts of at most maxLine
    text = ascii(text);
    var limit = opts.maxLine || 6000;
    if (text.length <= limit) {
      logger.info("%s", TAG + text);
      return;
    }
    var n = Math.ceil(text.length / limit);
    for (var i = 0; i < n; i++) logger.info("%s", TAG + "P " + s + "/" + (i + 1) + "/" + n + " " + text.slice(i * limit, (i + 1) * limit));
  }

  // -- lean mode: matchLoop calls batched into "loops" records (as nkreplay_capture.lua's lean mode) -------
  var lean = false, leanOutcomes = false, flushTicks = 10, limitBytes = 5800, snapshotsDropped = false;
  var MAX_EMPTY = 36000; // empty ticks alone are not worth a line: written with the next record, or after this many
  // the pending batch: ticks batchFirst .. batchNext - 1 (batchNext -1: none), its entries (JSON texts) and
  // their size, the tick after which it is written, its senders (JSON texts, "ps") and text -> index (from 1)
  var batchFirst = 0, batchNext = -1, batchBytes = 0, batch = [], flushAt = 0, batchPs = [], batchIndex = {};
  var leanNd = [], leanCall = { nd: leanNd }; // `active` during an unobserved lean loop: nondeterministic values only
  var batchLogger = null; // the logger of the latest call: the batch is written with it
  function flush() {
    if (batchNext < 0) return;
    var s = seq;
    seq += 1;
    var text = '{"m":' + JSON.stringify(String(matchId)) + ',"s":' + s + ',"k":"loops","t":' + batchFirst +
      ',"n":' + (batchNext - batchFirst) + (leanOutcomes ? ',"o":1' : "") + ',"ps":[' + batchPs.join(",") +
      '],"x":[' + batch.join(",") + "]}";
    batchNext = -1;
    batchBytes = 0;
    batch = [];
    batchPs = [];
    batchIndex = {};
    writeLine(batchLogger, text, s);
  }
  function flushQuietly() {
    try { flush(); } catch (e) { warn(batchLogger, "could not record loop calls: " + String(e)); }
  }
  function warn(logger, text) {
    try { logger.warn("%s", "nkreplay_capture: " + text); } catch (e) { /* nothing */ }
  }
  // one more loop tick; body: its entry's fields (",..." text), "" for an empty tick. A body with messages
  // refers to the batch's senders: encodeMessages already chose the batch it goes into
  function addTick(tick, body) {
    if (batchNext >= 0 && (tick !== batchNext || batchBytes + body.length > limitBytes) && body.slice(0, 6) !== ',"ms":') flush();
    if (batchNext < 0) {
      batchFirst = tick;
      flushAt = tick + MAX_EMPTY - 1;
    }
    if (body !== "") {
      var entry = '{"i":' + (tick - batchFirst) + body + "}";
      batch.push(entry);
      batchBytes += entry.length + 1;
      var due = batchFirst + flushTicks - 1; // a tick with something waits at most flushSeconds
      if (due < flushAt) flushAt = due;
    }
    batchNext = tick + 1;
  }
  // a tick's messages as the entry field "ms": [sender, opCode, data, reliable, receiveTimeMs] each, the
  // sender an index (from 1) into the record's "ps" (the batch's senders, each written once per record)
  function encodeMessages(messages, tick) {
    if (batchNext >= 0 && (tick !== batchNext || batchBytes > limitBytes)) flush();
    var parts = [];
    for (var i = 0; i < messages.length; i++) {
      var m = messages[i], sender = JSON.stringify(presence4(m.sender)), idx = batchIndex[sender];
      if (idx === undefined) {
        batchPs.push(sender);
        idx = batchIndex[sender] = batchPs.length;
        batchBytes += sender.length + 1;
      }
      var d = m.data === undefined || m.data === null ? "null" : redactOps[m.opCode] ? "false" : JSON.stringify(data64(m.data));
      parts.push("[" + idx + "," + JSON.stringify(m.opCode) + "," + d + "," + (m.reliable ? "true" : "false") + "," +
        JSON.stringify(m.receiveTimeMs) + "]");
    }
    return ',"ms":[' + parts.join(",") + "]";
  }
  // a lean loop's entry fields after the call: nondeterministic values, the error, the outcome (if observed)
  function leanBody(tick, body, returned, call, res) {
    if (leanNd.length) {
      body += ',"nd":' + JSON.stringify(leanNd);
      leanNd = [];
      leanCall.nd = leanNd;
    }
    if (!returned) return body + ',"e":' + JSON.stringify(THREW);
    if (call !== null) {
      var o = {}, any = false;
      if (call.out.b.length) { o.b = call.out.b; any = true; }
      if (call.out.kk.length) { o.kk = call.out.kk; any = true; }
      if (call.out.lu.length) { o.lu = call.out.lu; any = true; }
      if (isNil(res) || isNil(res.state)) { o.st = true; any = true; }
      else if ((opts.snapshotEvery || 0) > 0 && tick % opts.snapshotEvery === 0) { o.ss = redacted(res.state, 0); any = true; }
      if (any) {
        var text;
        try {
          text = JSON.stringify(o);
        } catch (e) {
          if (o.ss === undefined) throw e;
          delete o.ss;
          o.ss_error = String(e);
          text = JSON.stringify(o);
        }
        body += ',"o":' + text;
      }
    }
    return body;
  }
  function makeLeanLoop(fn) {
    return function (ctx, logger, nk, dispatcher, tick, state, messages) {
      if (!enabled) return fn.apply(null, arguments);
      batchLogger = logger;
      var args = Array.prototype.slice.call(arguments), msText = "", call = null;
      args[2] = nkFor(nk);
      if (messages && messages.length) {
        try { msText = encodeMessages(messages, tick); } catch (e) { msText = ',"capture_error":' + JSON.stringify(String(e)); }
      }
      if (leanOutcomes) { // the recording dispatcher only when outcomes are recorded
        call = { nd: leanNd, out: { b: [], kk: [], lu: [] } };
        args[3] = dispatcherFor(dispatcher);
      }
      active = call === null ? leanCall : call;
      var returned = false, r;
      try {
        r = fn.apply(null, args);
        returned = true;
        return r;
      } finally {
        active = null;
        var ends = !returned || isNil(r) || isNil(r.state);
        if (msText === "" && call === null && !ends && tick === batchNext && !leanNd.length) {
          batchNext = tick + 1; // an idle tick: only counted
        } else {
          try {
            addTick(tick, leanBody(tick, msText, returned, call, r));
          } catch (e) {
            leanNd = [];
            leanCall.nd = leanNd;
            warn(logger, "could not record a loop call: " + String(e));
            try { addTick(tick, ',"capture_error":' + JSON.stringify(String(e))); } catch (e2) { /* nothing */ }
          }
        }
        if (ends || tick >= flushAt) flushQuietly(); // a throw: before Nakama's crash line
      }
    };
  }

  function recordingDispatcher(real) {
    function record(deferred, op, data, presences, sender, reliable) {
      if (active === null) return;
      var targets = false;
      if (presences !== undefined && presences !== null) {
        targets = [];
        for (var i = 0; i < presences.length; i++) targets.push([presences[i].sessionId, presences[i].node]);
      }
      var s = sender ? [sender.userId, sender.sessionId, sender.username] : false;
      active.out.b.push([op, redactOps[op] ? false : data64(data), targets, s, reliable !== false, deferred]);
    }
    return {
      broadcastMessage: function broadcastMessage(op, data, presences, sender, reliable) {
        real.broadcastMessage(op, data, presences, sender, reliable);
        record(false, op, data, presences, sender, reliable);
      },
      broadcastMessageDeferred: function broadcastMessageDeferred(op, data, presences, sender, reliable) {
        real.broadcastMessageDeferred(op, data, presences, sender, reliable);
        record(true, op, data, presences, sender, reliable);
      },
      matchKick: function matchKick(presences) {
        real.matchKick(presences);
        if (active !== null && presences) for (var i = 0; i < presences.length; i++) active.out.kk.push(presence5(presences[i]));
      },
      matchLabelUpdate: function matchLabelUpdate(label) {
        real.matchLabelUpdate(label);
        if (active !== null) active.out.lu.push(label);
      },
    };
  }
  var dispatchers = [];
  function dispatcherFor(real) {
    for (var i = 0; i < dispatchers.length; i++) if (dispatchers[i][0] === real) return dispatchers[i][1];
    var d = recordingDispatcher(real);
    dispatchers.push([real, d]);
    return d;
  }

  var THREW = "threw (the error is in Nakama's crash line)";
  // run fn(args) recording `record`; the result (or the error) passes through untouched
  function run(logger, record, fn, args, finish) {
    if (batchNext >= 0) { // lean: the loops before this call come first
      batchLogger = logger;
      flushQuietly();
    }
    active = { nd: [], out: { b: [], kk: [], lu: [] } };
    var call = active, returned = false, r;
    try {
      r = fn.apply(null, args);
      returned = true;
      return r;
    } finally {
      active = null;
      try {
        var o = {};
        if (call.out.b.length) o.b = call.out.b;
        if (call.out.kk.length) o.kk = call.out.kk;
        if (call.out.lu.length) o.lu = call.out.lu;
        record.o = o;
        if (call.nd.length) record.nd = call.nd;
        if (!returned) record.e = THREW;
        else finish(record, r);
        emit(logger, record);
      } catch (e) {
        try { logger.warn("%s", "nkreplay_capture: could not record a " + record.k + " call: " + String(e)); } catch (e2) { /* nothing */ }
      }
    }
  }
  function isNil(v) { return v === null || v === undefined; }
  function stateResult(rec, r) { if (isNil(r) || isNil(r.state)) rec.o.st = true; }

  function makeWrapper(cb, fn) {
    var w;
    if (cb === "matchInit") {
      w = function (ctx, logger, nk, params) {
        matchId = ctx.matchId;
        seq = 0;
        batchNext = -1;
        batchBytes = 0;
        batch = [];
        batchPs = [];
        batchIndex = {};
        leanNd = [];
        leanCall.nd = leanNd;
        enabled = sampled(String(matchId));
        if (!enabled) return fn.apply(null, arguments);
        var args = Array.prototype.slice.call(arguments);
        args[2] = nkFor(nk);
        var rec = {
          k: "init", t: 0, p: redacted(params, 0),
          h: { v: VERSION, mod: opts.module || "", node: ctx.node, snap: opts.snapshotEvery || 0,
               red: opts.redact || [], redop: opts.redactOpCodes || [], src: "js-capture", mode: lean ? "lean" : "full" },
        };
        if (snapshotsDropped) warn(logger, "snapshotEvery needs outcomes: true in lean mode: no snapshots");
        return run(logger, rec, fn, args, function (r2, res) {
          if (res && typeof res === "object") {
            r2.o.tr = res.tickRate;
            r2.o.l = res.label === undefined ? "" : res.label;
          }
          if (lean) {
            var rate = res && typeof res === "object" && typeof res.tickRate === "number" ? res.tickRate : 0;
            flushTicks = Math.max(1, Math.floor(rate * (opts.flushSeconds === undefined ? 1 : opts.flushSeconds)));
            r2.h.flush = flushTicks;
            if (leanOutcomes) r2.h.outc = true;
          }
          stateResult(r2, res);
        });
      };
    } else {
      w = function (ctx, logger, nk, dispatcher, tick, state, x, y) {
        if (!enabled) return fn.apply(null, arguments);
        var args = Array.prototype.slice.call(arguments);
        args[2] = nkFor(nk);
        args[3] = dispatcherFor(dispatcher);
        var rec = { k: cb, t: tick }, finish = stateResult, i;
        if (cb === "matchJoinAttempt") {
          rec.k = "join_attempt";
          rec.pr = presence4(x);
          rec.md = redacted(y, 0);
          if (ctx.vars) rec.vars = redacted(ctx.vars, 0);
          finish = function (r2, res) {
            if (isNil(res)) { r2.o.st = true; return; }
            r2.o.a = res.accept;
            if (res.accept === false && typeof res.rejectMessage === "string") r2.o.r = res.rejectMessage;
            if (isNil(res.state)) r2.o.st = true;
          };
        } else if (cb === "matchJoin" || cb === "matchLeave") {
          rec.k = cb === "matchJoin" ? "join" : "leave";
          rec.ps = [];
          for (i = 0; i < x.length; i++) rec.ps.push(presence5(x[i]));
        } else if (cb === "matchLoop") {
          rec.k = "loop";
          var senders = [], index = {};
          rec.ms = [];
          for (i = 0; i < x.length; i++) {
            var m = x[i], key = m.sender.sessionId + "\u0000" + m.sender.node;
            if (index[key] === undefined) {
              senders.push(presence4(m.sender));
              index[key] = senders.length;
            }
            rec.ms.push([index[key], m.opCode, redactOps[m.opCode] ? false : data64(m.data), m.reliable, m.receiveTimeMs]);
          }
          rec.ps = senders;
          finish = function (r2, res) {
            if (isNil(res) || isNil(res.state)) r2.o.st = true;
            else if ((opts.snapshotEvery || 0) > 0 && tick % opts.snapshotEvery === 0) r2.o.ss = redacted(res.state, 0);
          };
        } else if (cb === "matchTerminate") {
          rec.k = "terminate";
          rec.g = x;
        } else if (cb === "matchSignal") {
          rec.k = "signal";
          rec.d = x;
          finish = function (r2, res) {
            if (res && typeof res === "object" && typeof res.data === "string") r2.o.rp = res.data;
            stateResult(r2, res);
          };
        }
        return run(logger, rec, fn, args, finish);
      };
    }
    return named(w, fn);
  }
  function named(w, fn) {
    try { Object.defineProperty(w, "name", { value: fn.name }); } catch (e) { /* an engine without configurable names */ }
    return w;
  }

  // wrap({matchInit: fn, ...}, options): replaces each global function of those names with a recording
  // wrapper (what Nakama calls), and returns the wrapped set
  function wrap(handlers, options) {
    setOptions(options);
    if (opts.mode !== "full" && opts.mode !== "lean") throw new TypeError('nkreplayCapture.wrap: mode must be "full" or "lean", got ' + String(opts.mode));
    lean = opts.mode === "lean";
    leanOutcomes = lean && opts.outcomes === true;
    limitBytes = (opts.maxLine || 6000) - 200;
    snapshotsDropped = lean && !leanOutcomes && (opts.snapshotEvery || 0) > 0;
    if (snapshotsDropped) opts.snapshotEvery = 0;
    var out = {};
    for (var i = 0; i < CALLBACKS.length; i++) {
      var cb = CALLBACKS[i], fn = handlers[cb];
      if (typeof fn !== "function") throw new TypeError("nkreplayCapture.wrap: " + cb + " is not a function");
      if (fn.__nkreplayWrapped) { out[cb] = fn; continue; }
      var w = lean && cb === "matchLoop" ? named(makeLeanLoop(fn), fn) : makeWrapper(cb, fn);
      Object.defineProperty(w, "__nkreplayWrapped", { value: true });
      out[cb] = w;
      if (fn.name && G[fn.name] === fn) G[fn.name] = w;
    }
    return out;
  }

  return { VERSION: VERSION, wrap: wrap };
})();
