// The replay side of a Nakama JavaScript match module, in QuickJS (see replay/js/_handler.py).
//
// Evaluated before the bundle, with its first line moved far down (_handler.py prepends newlines), so a
// stack frame at or below GLUE_LINE is this file: such frames are shown as goja shows Go functions,
// `name (native)`. Defines, on globalThis (non-enumerable, removed from sight of the bundle where it can):
//   __nkr_init(ctxJson)          runs InitModule with a recording initializer; returns the registrations
//   __nkr_invoke(module, callback, slot, tick, argsJson)   runs one match callback, returns its result
//   __nkr_json(slot) / __nkr_copy(slot) / __nkr_free(idsJson) / __nkr_set_ctx(ctxJson)
// Host functions (Python, replay/js/_handler.py) are reached only through hostCall.
(function (g) {
  "use strict";
  var GLUE_LINE = 1000000;
  var host = g.__nkr_host;
  delete g.__nkr_host;
  var define = function (name, value) {
    Object.defineProperty(g, name, { value: value, writable: false, enumerable: false, configurable: false });
  };

  // -- errors ------------------------------------------------------------------------------------------
  // goja's r.NewGoError: an Error whose name is GoError ("GoError: match stopped")
  function GoError(message) {
    var e = new Error(message);
    Object.setPrototypeOf(e, GoError.prototype);
    return e;
  }
  GoError.prototype = Object.create(Error.prototype, {
    constructor: { value: GoError, writable: true, configurable: true },
    name: { value: "GoError", writable: true, configurable: true },
  });
  var KINDS = { TypeError: TypeError, RangeError: RangeError, SyntaxError: SyntaxError, ReferenceError: ReferenceError };

  // strings cross to Python flat (see flat() below: the binding cannot convert a rope, in either direction)
  function f1(v) { return typeof v === "string" ? [v].join("") : v; }
  function hostCall(name, a, b, c, d, e, f) {
    var r = host(name, f1(a), f1(b), f1(c), f1(d), f1(e), f1(f));
    if (typeof r === "string") {
      if (r.charCodeAt(0) === 1) return r.slice(1);
      if (r.charCodeAt(0) === 0) {
        var i = r.indexOf("\0", 1);
        var kind = r.slice(1, i), message = r.slice(i + 1);
        if (kind === "GoError") throw GoError(message);
        throw new (KINDS[kind] || Error)(message);
      }
    }
    return r;
  }

  // stacks as goja writes them: "\tat matchLoop (index.js:12:5)"; frames of this file as "name (native)"
  var bundleName = "index.js";
  function frameText(cs) {
    var fn = cs.getFunctionName();
    var line = cs.getLineNumber();
    if (line === null || line === undefined || line >= GLUE_LINE) return fn ? fn + " (native)" : "native"; // QuickJS's C functions, this file
    var where = bundleName + ":" + line + ":" + cs.getColumnNumber();
    return fn && fn !== "<eval>" ? fn + " (" + where + ")" : where;
  }
  Error.prepareStackTrace = function (err, callsites) {
    var lines = [String(err)];
    for (var i = 0; i < callsites.length; i++) {
      var fn = callsites[i].getFunctionName() || "";
      if (fn.indexOf("__nkr") === 0) break; // the driver below the callback
      lines.push("\tat " + frameText(callsites[i]));
    }
    return lines.join("\n");
  };

  // -- bytes ---------------------------------------------------------------------------------------------
  // Python hands bytes over as latin-1 strings (one char per byte); the handler sees ArrayBuffers
  function bufferOf(s) {
    var u = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
    return u.buffer;
  }
  function latin1Of(buf) {
    var u = new Uint8Array(buf), out = "";
    if (u.length <= 8192) return String.fromCharCode.apply(null, u); // most messages: one native call
    for (var i = 0; i < u.length; i += 8192) out += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
    return out;
  }
  // Go's []byte(string) of a JS string: UTF-8, a lone surrogate as U+FFFD
  var ALL_ASCII = /^[\x00-\x7f]*$/;
  function utf8Latin1(s) {
    if (ALL_ASCII.test(s)) return s; // ASCII: its UTF-8 bytes are its characters
    return unescape(encodeURIComponent(s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/g, function (m) {
      return m.length === 2 ? m[0] + "\uFFFD" : "\uFFFD";
    })));
  }
  function isBuffer(v) { return v instanceof ArrayBuffer; }
  // message data arrives as hex: QuickJS decodes it natively (a loop over a latin-1 string costs ~80 ns a byte)
  var fromHex = Uint8Array.fromHex;
  // Reflect.apply, Math.min and String.fromCharCode taken before the bundle runs (nk.binaryToString's ASCII path)
  var reflectApply = Reflect.apply, mathMin = Math.min, fromCharCode = String.fromCharCode, NativeInt8Array = Int8Array;
  var NOT_ASCII = /[\x80-\xff]/;
  function bytesArg(v, what) {
    if (typeof v === "string") return utf8Latin1(v);
    if (isBuffer(v)) return latin1Of(v);
    throw new TypeError(what);
  }

  // -- determinism: Math.random, Date (the runtime's clock, UTC) --------------------------------------------
  var nativeRandom = Math.random;
  Object.defineProperty(Math, "random", {
    value: function random() { return hostCall("random"); }, writable: true, configurable: true,
  });
  var NativeDate = Date;
  function now() { return hostCall("time"); }
  function UtcDate(y, mo, d, h, mi, s, ms) {
    var n = arguments.length;
    if (!new.target) return new NativeDate(now()).toUTCString().replace("GMT", "GMT+0000 (Coordinated Universal Time)");
    var inner;
    if (n === 0) inner = new NativeDate(now());
    else if (n === 1) inner = new NativeDate(y instanceof NativeDate ? y.getTime() : y);
    else inner = new NativeDate(NativeDate.UTC(y, mo, n > 2 ? d : 1, h || 0, mi || 0, s || 0, ms || 0));
    return Reflect.construct(NativeDate, [inner.getTime()], new.target);
  }
  UtcDate.prototype = NativeDate.prototype;
  UtcDate.now = function now() { return hostCall("time"); };
  UtcDate.UTC = NativeDate.UTC;
  UtcDate.parse = NativeDate.parse;
  Object.defineProperty(UtcDate, "name", { value: "Date" });
  var P = NativeDate.prototype;
  ["FullYear", "Month", "Date", "Day", "Hours", "Minutes", "Seconds", "Milliseconds"].forEach(function (k) {
    P["get" + k] = P["getUTC" + k];
    if (k !== "Day") P["set" + k] = P["setUTC" + k];
  });
  P.getTimezoneOffset = function getTimezoneOffset() { return 0; };
  P.toString = function toString() {
    return isNaN(this.getTime()) ? "Invalid Date" : this.toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) /, "$1 $3 $2 $4 ") + "+0000 (Coordinated Universal Time)";
  };
  P.toDateString = function toDateString() { return this.toString().slice(0, 15); };
  P.toTimeString = function toTimeString() { return this.toString().slice(16); };
  P.toLocaleString = P.toString;
  P.toLocaleDateString = P.toDateString;
  P.toLocaleTimeString = P.toTimeString;
  P.constructor = UtcDate;
  g.Date = UtcDate;

  // JSON.parse with goja's errors: Go's encoding/json decoder texts (goja parses with it)
  var nativeParse = JSON.parse;
  Object.defineProperty(JSON, "parse", {
    value: function parse(text, reviver) {
      var s = String(text);
      try {
        return nativeParse(s, reviver);
      } catch (e) {
        if (!(e instanceof SyntaxError)) throw e;
        throw new SyntaxError(hostCall("json_error", s));
      }
    },
    writable: true, configurable: true,
  });

  // Array.prototype.sort as goja's: Go's sort.Stable (insertion sort of 20-element blocks, then SymMerge)
  // with goja's comparison (undefined last, holes after them, a comparator's -0 counts as "less"), so a
  // comparator that is not a consistent order gives goja's result, not QuickJS's
  var nativeSort = Array.prototype.sort;
  function goSort(items, compare) {
    function cmp(x, y) {
      if (x === undefined && y === undefined) return 0;
      if (x === undefined) return 1;
      if (y === undefined) return -1;
      if (compare !== undefined) {
        var f = +compare(x, y);
        if (f > 0) return 1;
        if (f < 0 || (f === 0 && 1 / f < 0)) return -1;
        return 0;
      }
      var a = String(x), b = String(y);
      return a < b ? -1 : a > b ? 1 : 0;
    }
    function less(i, j) { return cmp(items[i], items[j]) < 0; }
    function swap(i, j) { var t = items[i]; items[i] = items[j]; items[j] = t; }
    function insertion(a, b) {
      for (var i = a + 1; i < b; i++) for (var j = i; j > a && less(j, j - 1); j--) swap(j, j - 1);
    }
    function swapRange(a, b, n) { for (var i = 0; i < n; i++) swap(a + i, b + i); }
    function rotate(a, m, b) {
      var i = m - a, j = b - m;
      while (i !== j) {
        if (i > j) { swapRange(m - i, m, j); i -= j; } else { swapRange(m - i, m + j - i, i); j -= i; }
      }
      swapRange(m - i, m, i);
    }
    function symMerge(a, m, b) {
      var i, j, h, k;
      if (m - a === 1) {
        i = m; j = b;
        while (i < j) { h = (i + j) >>> 1; if (less(h, a)) i = h + 1; else j = h; }
        for (k = a; k < i - 1; k++) swap(k, k + 1);
        return;
      }
      if (b - m === 1) {
        i = a; j = m;
        while (i < j) { h = (i + j) >>> 1; if (!less(m, h)) i = h + 1; else j = h; }
        for (k = m; k > i; k--) swap(k, k - 1);
        return;
      }
      var mid = (a + b) >>> 1, n = mid + m, start, r;
      if (m > mid) { start = n - b; r = mid; } else { start = a; r = m; }
      var p = n - 1;
      while (start < r) { var c = (start + r) >>> 1; if (!less(p - c, c)) start = c + 1; else r = c; }
      var end = n - start;
      if (start < m && m < end) rotate(start, m, end);
      if (a < start && start < mid) symMerge(a, start, mid);
      if (mid < end && end < b) symMerge(mid, end, b);
    }
    var n = items.length, block = 20, a = 0, b = block;
    while (b <= n) { insertion(a, b); a = b; b += block; }
    insertion(a, n);
    while (block < n) {
      a = 0; b = 2 * block;
      while (b <= n) { symMerge(a, a + block, b); a = b; b += 2 * block; }
      var m = a + block;
      if (m < n) symMerge(a, m, n);
      block *= 2;
    }
  }
  Object.defineProperty(Array.prototype, "sort", {
    value: function sort(compare) {
      if (compare !== undefined && typeof compare !== "function")
        throw new TypeError("The comparison function must be either a function or undefined");
      // without a comparator the order is a total one (strings by UTF-16 code units, undefined last, holes
      // after), which every stable sort gives alike: QuickJS's own sort (stable, native) is Go's result here
      if (compare === undefined || !Array.isArray(this)) return nativeSort.call(this, compare);
      var len = this.length, items = [], holes = 0;
      for (var i = 0; i < len; i++) { if (i in this) items.push(this[i]); else holes++; }
      goSort(items, compare);
      for (i = 0; i < items.length; i++) this[i] = items[i];
      for (; i < len; i++) delete this[i];
      return this;
    },
    writable: true, configurable: true,
  });

  // -- ctx, logger ---------------------------------------------------------------------------------------
  var matchCtx = {};
  function setCtx(json) { matchCtx = nativeParse(json); }
  function goSprintf(format, args) {
    var i = 0;
    var text = String(format).replace(/%([-+# 0]*\d*(?:\.\d+)?)([vsdfgtqxX%])/g, function (m, flags, verb) {
      if (verb === "%") return "%";
      if (i >= args.length) return "%!" + verb + "(MISSING)";
      var v = args[i++];
      if (verb === "d" && typeof v === "number") return String(Math.trunc(v));
      if (verb === "q") return JSON.stringify(String(v));
      if (typeof v === "object" && v !== null) return JSON.stringify(v);
      return String(v);
    });
    while (i < args.length) text += " %!(EXTRA " + String(args[i++]) + ")";
    return text;
  }
  function makeLogger(fields) {
    var logger = {};
    ["debug", "info", "warn", "error"].forEach(function (level) {
      logger[level] = function (format) {
        hostCall("log", level, goSprintf(format, Array.prototype.slice.call(arguments, 1)));
      };
    });
    logger.withField = function withField(k, v) { var f = Object.assign({}, fields); f[k] = v; return makeLogger(f); };
    logger.withFields = function withFields(m) { return makeLogger(Object.assign({}, fields, m)); };
    logger.getFields = function getFields() { return fields; };
    return logger;
  }
  var logger = makeLogger({});

  // -- nk ------------------------------------------------------------------------------------------------
  var nk = {};
  var UNAVAILABLE = ("event metricsCounterAdd metricsGaugeSet metricsTimerRecord cronPrev cronNext sqlExec sqlQuery " +
    "jwtGenerate authenticateApple authenticateCustom authenticateDevice authenticateEmail authenticateFacebook " +
    "authenticateFacebookInstantGame authenticateGameCenter authenticateGoogle authenticateSteam " +
    "authenticateTokenGenerate accountGetId accountsGetId accountUpdateId accountDeleteId accountExportId " +
    "accountImportId usersGetId usersGetUsername usersGetFriendStatus usersGetRandom usersBanId usersUnbanId " +
    "linkApple linkCustom linkDevice linkEmail linkFacebook linkFacebookInstantGame linkGameCenter linkGoogle " +
    "linkSteam unlinkApple unlinkCustom unlinkDevice unlinkEmail unlinkFacebook unlinkFacebookInstantGame " +
    "unlinkGameCenter unlinkGoogle unlinkSteam streamUserList streamUserGet streamUserJoin streamUserUpdate " +
    "streamUserLeave streamUserKick streamCount streamClose streamSend streamSendRaw sessionDisconnect " +
    "sessionLogout matchCreate matchGet matchList matchSignal notificationSend notificationSendAll " +
    "notificationsList notificationsSend notificationsDelete notificationsUpdate notificationsGetId " +
    "notificationsDeleteId walletUpdate walletsUpdate walletLedgerUpdate walletLedgerList statusFollow " +
    "statusUnfollow storageList storageWriteRetry multiUpdate leaderboardCreate leaderboardDelete " +
    "leaderboardList leaderboardRanksDisable leaderboardRecordsList leaderboardRecordsListCursorFromRank " +
    "leaderboardRecordWrite leaderboardRecordDelete leaderboardsGetId leaderboardRecordsHaystack " +
    "purchaseValidateApple purchaseValidateGoogle purchaseValidateHuawei purchaseValidateFacebookInstant " +
    "purchaseValidateSamsung purchaseGetByTransactionId purchasesList subscriptionValidateApple " +
    "subscriptionValidateGoogle subscriptionGetByProductId subscriptionsList tournamentCreate tournamentDelete " +
    "tournamentAddAttempt tournamentJoin tournamentList tournamentsRanksDisable tournamentsGetId " +
    "tournamentRecordsList tournamentRecordWrite tournamentRecordDelete tournamentRecordsHaystack groupsGetId " +
    "groupCreate groupUpdate groupDelete groupUsersKick groupUsersList userGroupsList friendsList " +
    "friendsOfFriendsList friendsAdd friendsDelete friendsBlock friendMetadataUpdate groupUserJoin " +
    "groupUserLeave groupUsersAdd groupUsersBan groupUsersPromote groupUsersDemote groupsList groupsGetRandom " +
    "fileRead channelMessageSend channelMessageUpdate channelMessageRemove channelMessagesList channelIdBuild " +
    "storageIndexList partyList").split(" ");
  UNAVAILABLE.forEach(function (name) {
    nk[name] = { [name]: function () { return hostCall("unavailable", name); } }[name];
  });
  nk.uuidv4 = function uuidv4() { return hostCall("uuid"); };
  nk.binaryToString = function binaryToString(data) {
    if (data === undefined || data === null || !isBuffer(data)) throw new TypeError("expects a ArrayBuffer object");
    // ASCII (every byte below 0x80: none negative read as signed bytes) is UTF-8 as it is: two native calls,
    // where a regular expression over the text costs more
    var signed = new NativeInt8Array(data);
    if (signed.length <= 8192 && reflectApply(mathMin, null, signed) >= 0) return reflectApply(fromCharCode, null, signed);
    var bytes = latin1Of(data);
    if (!NOT_ASCII.test(bytes)) return bytes;
    try { // strict UTF-8, as Go's utf8.Valid: overlong forms and encoded surrogates are refused too
      return decodeURIComponent(escape(bytes));
    } catch (e) {
      throw new TypeError("expects data to be UTF-8 encoded");
    }
  };
  nk.stringToBinary = function stringToBinary(s) {
    if (typeof s !== "string") throw new TypeError("expects a string");
    return bufferOf(utf8Latin1(s));
  };
  function encoder(name, kind) {
    return { [name]: function (input, padding) {
      var raw = bytesArg(input, "expects a string or ArrayBuffer");
      return hostCall("encode", kind, raw, padding === undefined || padding === null ? true : !!padding);
    } }[name];
  }
  function decoder(name, kind) {
    return { [name]: function (input, padding) {
      if (typeof input !== "string") throw new TypeError("expects a string");
      return bufferOf(hostCall("decode", kind, input, padding === undefined || padding === null ? null : !!padding));
    } }[name];
  }
  nk.base64Encode = encoder("base64Encode", "base64");
  nk.base64Decode = decoder("base64Decode", "base64");
  nk.base64UrlEncode = encoder("base64UrlEncode", "base64url");
  nk.base64UrlDecode = decoder("base64UrlDecode", "base64url");
  nk.base16Encode = encoder("base16Encode", "base16");
  nk.base16Decode = decoder("base16Decode", "base16");
  nk.md5Hash = function md5Hash(s) { return hostCall("hash", "md5", bytesArg(s, "expects a string")); };
  nk.sha256Hash = function sha256Hash(s) { return hostCall("hash", "sha256", bytesArg(s, "expects a string")); };
  nk.hmacSha256Hash = function hmacSha256Hash(s, key) {
    return bufferOf(hostCall("hmac", bytesArg(s, "expects a string"), bytesArg(key, "expects a string")));
  };
  nk.secureRandomBytes = function secureRandomBytes(n) {
    if (typeof n !== "number" || !Number.isInteger(n)) throw new TypeError("expects number");
    return bufferOf(hostCall("random_bytes", n));
  };
  var cache = new Map();
  nk.localcacheGet = function localcacheGet(key, def) {
    if (typeof key !== "string") throw new TypeError("expects string");
    if (key === "") throw new TypeError("expects non empty key string");
    return cache.has(key) ? cache.get(key) : (def === null ? undefined : def);
  };
  nk.localcachePut = function localcachePut(key, value) {
    if (typeof key !== "string") throw new TypeError("expects string");
    if (key === "") throw new TypeError("expects non empty key string");
    cache.set(key, value);
  };
  nk.localcacheDelete = function localcacheDelete(key) { cache.delete(String(key)); };
  nk.localcacheClear = function localcacheClear() { cache.clear(); };
  function storageJson(v, what) {
    if (v === undefined || v === null) throw new TypeError(what);
    if (!Array.isArray(v)) throw new TypeError(what);
    return JSON.stringify(v);
  }
  nk.storageRead = function storageRead(ids) {
    return nativeParse(hostCall("storage_read", storageJson(ids, "expects an array of keys")));
  };
  nk.storageWrite = function storageWrite(objects) {
    return nativeParse(hostCall("storage_write", storageJson(objects, "expects a valid array of data")));
  };
  nk.storageDelete = function storageDelete(ids) {
    hostCall("storage_delete", storageJson(ids, "expects an array of object ids"));
  };
  nk.httpRequest = function httpRequest(url, method, headers, body, timeout) {
    return nativeParse(hostCall("http", String(url), String(method || "get"), JSON.stringify(headers || {}), body == null ? null : String(body)));
  };
  Object.freeze(nk);

  // -- dispatcher ------------------------------------------------------------------------------------------
  var UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
  function jsInt(v) {
    if (typeof v !== "number" || !Number.isInteger(v)) throw new TypeError("expects number");
    return v;
  }
  function presenceList(v, what) {
    if (!Array.isArray(v)) throw new TypeError(what);
    return v;
  }
  function broadcaster(name, deferred) {
    return { [name]: function (opCode, data, presences, sender, reliable) {
      var op = jsInt(opCode);
      var bytes = null;
      if (data !== undefined && data !== null) {
        if (typeof data === "string") bytes = utf8Latin1(data);
        else if (isBuffer(data)) bytes = latin1Of(data);
        else throw new TypeError("expects data to be an ArrayBuffer, a string or nil");
      }
      var targets = null;
      if (presences !== undefined && presences !== null) {
        var list = presenceList(presences, "expects an array of presences or nil");
        targets = [];
        for (var i = 0; i < list.length; i++) {
          var p = list[i] || {};
          if (p.sessionId == null) throw new TypeError("presence is expected to contain a 'sessionId'");
          if (typeof p.sessionId !== "string") throw new TypeError("expects a 'sessionId' string");
          if (!UUID.test(p.sessionId)) throw new TypeError("expects a valid 'sessionId'");
          if (p.node == null) throw new TypeError("expects presence to contain a 'node'");
          if (typeof p.node !== "string") throw new TypeError("expects a 'nodeId' string");
          targets.push([p.userId == null ? "" : String(p.userId), p.sessionId, p.username == null ? "" : String(p.username), p.node]);
        }
        if (targets.length === 0) return undefined;
      }
      var from = null;
      if (sender !== undefined && sender !== null) {
        if (typeof sender !== "object") throw new TypeError("expects sender to be an object");
        if (sender.userId == null) throw new TypeError("expects presence to contain 'userId'");
        if (typeof sender.userId !== "string") throw new TypeError("expects presence to contain 'userId' string");
        if (!UUID.test(sender.userId)) throw new TypeError("expects presence to contain valid userId");
        if (sender.sessionId == null) throw new TypeError("presence is expected to contain a 'sessionId'");
        if (typeof sender.sessionId !== "string") throw new TypeError("expects a 'sessionId' string");
        if (!UUID.test(sender.sessionId)) throw new TypeError("expects a valid 'sessionId'");
        if (sender.username == null) throw new TypeError("presence is expected to contain a 'username'");
        // Nakama 3.40 puts the session id where the username belongs (runtime_javascript_match_core.go)
        from = [sender.userId, sender.sessionId, sender.sessionId];
      }
      var rel = true;
      if (reliable !== undefined && reliable !== null) {
        if (typeof reliable !== "boolean") throw new TypeError("expects boolean");
        rel = reliable;
      }
      hostCall("broadcast", deferred, op, bytes, targets && JSON.stringify(targets), from && JSON.stringify(from), rel);
      return undefined;
    } }[name];
  }
  var dispatcher = {};
  dispatcher.broadcastMessage = broadcaster("broadcastMessage", false);
  dispatcher.broadcastMessageDeferred = broadcaster("broadcastMessageDeferred", true);
  dispatcher.matchKick = function matchKick(presences) {
    if (presences === undefined || presences === null) return undefined;
    var list = presenceList(presences, "expects an array of presence objects");
    var out = [];
    for (var i = 0; i < list.length; i++) {
      var p = list[i] || {};
      if (p.userId == null) throw new TypeError("expects presence to contain 'userId'");
      if (typeof p.userId !== "string") throw new TypeError("expects presence to contain 'userId' string");
      if (!UUID.test(p.userId)) throw new TypeError("expects presence to contain valid userId");
      if (p.sessionId == null) throw new TypeError("presence is expected to contain a 'sessionId'");
      if (typeof p.sessionId !== "string") throw new TypeError("expects a 'sessionId' string");
      if (!UUID.test(p.sessionId)) throw new TypeError("expects a valid 'sessionId'");
      if (p.node == null) throw new TypeError("expects presence to contain a 'node'");
      if (typeof p.node !== "string") throw new TypeError("expects a 'node' string");
      out.push([p.userId, p.sessionId, p.username == null ? "" : String(p.username), p.node, typeof p.reason === "number" ? p.reason : 0]);
    }
    hostCall("kick", JSON.stringify(out));
    return undefined;
  };
  dispatcher.matchLabelUpdate = function matchLabelUpdate(label) {
    if (typeof label !== "string") throw new TypeError("expects string");
    hostCall("label", label);
    matchCtx.matchLabel = label;
    return undefined;
  };
  Object.freeze(dispatcher);

  // -- registration: InitModule with an initializer that records -----------------------------------------
  var CALLBACKS = ["matchInit", "matchJoinAttempt", "matchJoin", "matchLeave", "matchLoop", "matchTerminate", "matchSignal"];
  var matches = Object.create(null), rpcs = Object.create(null);
  // Nakama's match runtime calls each callback through the global of the name the registration used
  // (server/runtime_javascript_init.go reads it from the source): a global function of the callback's
  // name wins over the object's value, so a capture wrapper that replaced the global is what runs
  function resolve(fn) {
    var name = fn.name;
    var global = name ? g[name] : undefined;
    return typeof global === "function" ? global : fn;
  }
  var initializer = {
    registerMatch: function registerMatch(name, handlers) {
      if (handlers === undefined || handlers === null || typeof handlers !== "object") throw new TypeError("expects an object");
      var fns = {};
      CALLBACKS.forEach(function (cb) {
        if (!(cb in handlers)) throw new TypeError(cb + " not found");
        if (typeof handlers[cb] !== "function") throw new TypeError(cb + " value not a valid function");
        fns[cb] = resolve(handlers[cb]);
      });
      matches[String(name)] = fns;
    },
    registerRpc: function registerRpc(id, fn) {
      if (typeof id !== "string" || id === "") throw new TypeError("expects a non empty string");
      if (typeof fn !== "function") throw new TypeError("expects a function");
      rpcs[id.toLowerCase()] = resolve(fn);
    },
  };
  var initializerProxy = new Proxy(initializer, {
    get: function (target, key) {
      if (key in target) return target[key];
      if (typeof key === "string" && key.indexOf("register") === 0) return function () {}; // ignored in a replay
      return undefined;
    },
  });

  define("__nkr_init", function __nkr_init(ctxJson, fileName) {
    bundleName = fileName;
    var init = g.InitModule;
    if (typeof init !== "function") return JSON.stringify({ problem: "no top-level function InitModule(ctx, logger, nk, initializer)" });
    try {
      init(nativeParse(ctxJson), logger, nk, initializerProxy);
    } catch (e) {
      return JSON.stringify({ problem: "InitModule raised " + describe(e, "InitModule").text });
    }
    return JSON.stringify({ matches: Object.keys(matches), rpcs: Object.keys(rpcs) });
  });

  // -- the state crosses into Go between callbacks (server/runtime_javascript_match_core.go) ------------------
  // Nakama exports the returned state to Go values (objects -> map[string]any, arrays -> []any, undefined ->
  // nil) and builds the next call's state as a new object whose values are goja wrappers of those: a
  // nested object is a Go map (objectGoMapSimple) and an array a Go slice (objectGoSlice). Storing into one
  // stores an *exported copy* of the value, so a JS object mutated after it was stored does not change
  // what the map holds; mutations through the container (state.players[id].hp -= 1) do persist. Here every
  // nested object or array of the kept state *is* such a wrapper: a Proxy whose target holds primitives and
  // further wrappers. The Proxies trap only what changes a Go value (set, defineProperty): reads go to the
  // target natively (a get trap would be a JavaScript call on every property read of the handler).
  // Key order: Go walks a map in random order; here the order of insertion (any order is one Go may pick).
  // wrapper -> its record: the Proxy's own handler (prototype mapTraps or sliceTraps), holding its target (t)
  // and what canonicalOf keeps about it (keys: sorted keys; tpl: kept bytes), which the traps drop on a change
  // One export (goja's Export with its objectExportCtx) copies each JavaScript object once: an object met
  // again in the same export, by a cycle or from a second place, becomes the same Go value (seen: object ->
  // its copy, made on the export's first object).
  var GO = new WeakMap();
  function toGo(v, depth, seen) { // a JavaScript value stored into Go: a copy whose nested objects are wrappers
    if (v === undefined) return null;
    if (v === null || typeof v !== "object" || depth > 10000) return v;
    if (GO.has(v)) return v; // a wrapper is stored as the Go value itself (aliasing)
    if (isBuffer(v) || v instanceof NativeDate) return v;
    if (seen === null) seen = new NativeMap();
    else if (seen.has(v)) return seen.get(v);
    var out, i, w;
    if (Array.isArray(v)) {
      out = new Array(v.length);
      w = wrap(out, sliceTraps);
      seen.set(v, w);
      for (i = 0; i < v.length; i++) out[i] = toGo(v[i], depth + 1, seen);
      return w;
    }
    out = {};
    w = wrap(out, mapTraps);
    seen.set(v, w);
    var keys = Object.keys(v);
    for (i = 0; i < keys.length; i++) out[keys[i]] = toGo(v[keys[i]], depth + 1, seen);
    return w;
  }
  function wrap(target, traps) {
    var record = Object.create(traps);
    record.t = target;
    record.keys = null;
    record.tpl = 0;
    record.offs = null;
    record.slots = null;
    record.view = null;
    record.stale = false;
    var w = new Proxy(target, record);
    GO.set(w, record);
    return w;
  }
  function goValue(v) { return v === null || typeof v !== "object" ? (v === undefined ? null : v) : toGo(v, 0, null); }
  var hasOwn = Object.prototype.hasOwnProperty, deleteProperty = Reflect.deleteProperty;
  var mapTraps = { // a change drops the map's kept bytes, a key added or deleted its sorted keys too
    __proto__: null, // no trap inherited from Object.prototype (a bundle may add properties there)
    set: function (t, k, v) {
      var offs = this.offs;
      if (offs !== null && typeof v === "number" && offs[k] !== undefined) { t[k] = v; this.stale = true; return true; }
      if (!hasOwn.call(t, k)) this.keys = null;
      this.tpl = 0;
      this.offs = null;
      t[k] = v === null || typeof v !== "object" ? (v === undefined ? null : v) : toGo(v, 0, null); // goValue, inlined
      return true;
    },
    defineProperty: function (t, k, d) { if (!hasOwn.call(t, k)) this.keys = null; this.tpl = 0; this.offs = null; t[k] = goValue(d.value); return true; },
    deleteProperty: function (t, k) { this.keys = null; this.tpl = 0; this.offs = null; return deleteProperty(t, k); },
  };
  var sliceTraps = { // every change drops the slice's kept bytes (tpl)
    __proto__: null, // no trap inherited from Object.prototype (a bundle may add properties there)
    set: function (t, k, v) {
      var offs = this.offs;
      if (offs !== null && typeof v === "number" && offs[k] !== undefined) { t[k] = v; this.stale = true; return true; }
      this.tpl = 0;
      this.offs = null;
      if (typeof k === "string" && String(k >>> 0) === k) {
        t[k] = v === null || typeof v !== "object" ? (v === undefined ? null : v) : toGo(v, 0, null); // goValue, inlined
        return true;
      }
      if (k === "length") { t.length = v; return true; }
      throw new TypeError("Can't set property '" + String(k) + "' on Go slice");
    },
    defineProperty: function (t, k, d) {
      this.tpl = 0;
      this.offs = null;
      if (typeof k === "string" && String(k >>> 0) === k) { t[k] = goValue(d.value); return true; }
      if (k === "length") { t.length = d.value; return true; }
      throw new TypeError("Cannot define property '" + String(k) + "' on a Go slice");
    },
    deleteProperty: function (t, k) { this.tpl = 0; this.offs = null; return deleteProperty(t, k); },
  };
  function exportState(v) { // the returned state as kept: toGo's copy, but the top level unwrapped
    if (v === undefined) return null;
    if (v === null || typeof v !== "object") return v;
    var record = GO.get(v);
    if (record !== undefined) return record.t;
    if (isBuffer(v) || v instanceof NativeDate) return v;
    var out, i, keys, seen = new NativeMap();
    if (Array.isArray(v)) {
      out = new Array(v.length);
      seen.set(v, out);
      for (i = 0; i < v.length; i++) out[i] = toGo(v[i], 1, seen);
      return out;
    }
    out = {};
    seen.set(v, out);
    keys = Object.keys(v);
    for (i = 0; i < keys.length; i++) out[keys[i]] = toGo(v[keys[i]], 1, seen);
    return out;
  }
  var viewData = null; // the kept data the view was made from
  function stateView(data) { // the next call's state: a new object holding the kept wrappers
    var o = {}, keys = objectKeys(data);
    for (var i = 0; i < keys.length; i++) o[keys[i]] = data[keys[i]];
    viewData = data;
    return o;
  }
  // exportState of the view the callback got (a plain object): a value it still holds from the kept data is a
  // Go value already, kept as it is (toGo would find it a wrapper, or copy nothing, at a WeakMap lookup each)
  function exportView(v) {
    var out = {}, keys = objectKeys(v), old = viewData, i, k, x, seen = null;
    for (i = 0; i < keys.length; i++) {
      k = keys[i];
      x = v[k];
      if (x === null || typeof x !== "object") out[k] = x === undefined ? null : x;
      else if (x === old[k] && hasOwn.call(old, k)) out[k] = x;
      else {
        if (seen === null) {
          seen = new NativeMap();
          seen.set(v, out);
        }
        out[k] = toGo(x, 1, seen);
      }
    }
    return out;
  }

  // -- the state's canonical bytes (recorder/format/_canonical.py), written here ------------------------------
  // The digest of a state is BLAKE2b of canonical_bytes(json.loads(JSON.stringify(state))). This writes those
  // bytes straight from the kept Go values (numbers as float64 need no decimal text: QuickJS's number
  // formatting was most of JSON.stringify's time). It gives up (null) wherever it could differ from that
  // path, which then runs instead: functions, symbols, BigInts, Dates, ArrayBuffers, a toJSON anywhere, lone
  // surrogates, gopher-lua pointer texts (": 0x", masked by the Python side), integers beyond 2^53 that
  // JSON writes inexactly, keys that UTF-16 and UTF-8 would sort apart, very deep nesting.
  // The built-ins it uses are taken now, before the bundle runs; the methods reached through prototypes are
  // checked on every call (a bundle that replaced one gets the JSON path)
  var ObjectProto = Object.prototype, ArrayProto = Array.prototype, objectKeys = Object.keys;
  var protoOf = Object.getPrototypeOf, objectCreate = Object.create, isArray = Array.isArray, uriEncode = encodeURIComponent, unescapeURI = unescape;
  var U8 = Uint8Array, NativeArrayBuffer = ArrayBuffer, NativeDataView = DataView, NativeMap = Map, MapProto = Map.prototype, mapGet = MapProto.get, mapSet = MapProto.set;
  var WeakMapProto = WeakMap.prototype, weakGet = WeakMapProto.get, weakSet = WeakMapProto.set, StringProto = String.prototype, TypedProto = protoOf(Uint8Array.prototype);
  var typedSet = TypedProto.set, subarray = TypedProto.subarray, typedSlice = TypedProto.slice, toHex = Uint8Array.prototype.toHex;
  var setFloat64 = DataView.prototype.setFloat64, setUint32 = DataView.prototype.setUint32;
  var charCodeAt = StringProto.charCodeAt, indexOf = StringProto.indexOf, FunctionProto = Function.prototype, fnCall = FunctionProto.call;
  function intrinsicsIntact() {
    return MapProto.get === mapGet && MapProto.set === mapSet && WeakMapProto.get === weakGet &&
      WeakMapProto.set === weakSet && TypedProto.slice === typedSlice &&
      TypedProto.set === typedSet && TypedProto.subarray === subarray && U8.prototype.toHex === toHex &&
      NativeDataView.prototype.setFloat64 === setFloat64 && NativeDataView.prototype.setUint32 === setUint32 &&
      StringProto.charCodeAt === charCodeAt && StringProto.indexOf === indexOf &&
      FunctionProto.call === fnCall && ObjectProto.toJSON === undefined && ArrayProto.toJSON === undefined;
  }
  // canonCap: canonBuf.length (a typed array's length is a getter: a call on every read)
  var canonBuf = new U8(1 << 16), canonView = new NativeDataView(canonBuf.buffer), canonPos = 0, canonCap = 1 << 16;
  var strCache = new NativeMap(), cached = 0; // string -> [its msgpack str bytes (header + UTF-8), their length, a char >= U+D800]
  var TWO53 = 9007199254740992;
  function room(n) {
    if (canonPos + n <= canonCap) return;
    var size = canonCap * 2;
    while (size < canonPos + n) size *= 2;
    var bigger = new U8(size);
    bigger.set(canonBuf.subarray(0, canonPos));
    canonBuf = bigger;
    canonCap = size;
    canonView = new NativeDataView(bigger.buffer);
  }
  function strBytes(s) { // cached [msgpack str of s, its length, high], or null (lone surrogate, pointer text)
    var e = strCache.get(s);
    if (e !== undefined) return e;
    if (s.indexOf(": 0x") >= 0) return null;
    var high = false, ascii = true, i, c;
    for (i = 0; i < s.length; i++) {
      c = s.charCodeAt(i);
      if (c >= 0x80) { ascii = false; if (c >= 0xd800) high = true; }
    }
    var utf8 = s;
    if (!ascii) {
      try { utf8 = unescapeURI(uriEncode(s)); } catch (err) { return null; } // a lone surrogate: URIError
    }
    var n = utf8.length, h = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
    e = new U8(h + n);
    if (h === 1) e[0] = 0xa0 | n;
    else if (h === 2) { e[0] = 0xd9; e[1] = n; }
    else if (h === 3) { e[0] = 0xda; e[1] = n >>> 8; e[2] = n & 255; }
    else { e[0] = 0xdb; e[1] = n >>> 24; e[2] = (n >>> 16) & 255; e[3] = (n >>> 8) & 255; e[4] = n & 255; }
    for (i = 0; i < n; i++) e[h + i] = utf8.charCodeAt(i);
    var entry = [e, h + n, high];
    if (++cached > 4096) { strCache = new NativeMap(); cached = 1; }
    strCache.set(s, entry);
    return entry;
  }
  function putHeader(n, fix, b16) { // fix: fixmap/fixarray base; b16: the 16-bit form's tag (+1: 32-bit)
    if (n < 16) canonBuf[canonPos++] = fix | n;
    else if (n < 65536) { canonBuf[canonPos++] = b16; canonBuf[canonPos++] = n >>> 8; canonBuf[canonPos++] = n & 255; }
    else { canonBuf[canonPos++] = b16 + 1; canonView.setUint32(canonPos, n); canonPos += 4; }
  }
  // a Go map's keys sorted and encoded, kept until the map traps add or delete a key
  var topKeys = null, topInfo = null; // the last top-level map's keys as Object.keys gave them, and its info
  function keysOf(target, record) { // record: the Go map's (its keys kept there), null at the top level
    var info = record !== null ? record.keys : null, i;
    if (info !== null) return info;
    if (record === null) { // the top level: a new object every call, mostly with the keys of the last one
      var seen = objectKeys(target);
      if (topKeys !== null && seen.length === topKeys.length) {
        for (i = 0; i < seen.length && seen[i] === topKeys[i]; i++);
        if (i === seen.length) return topInfo;
      }
      topKeys = seen;
      topInfo = null;
    }
    var keys = objectKeys(target), n = keys.length, enc = new Array(n);
    if (n > 1) nativeSort.call(keys); // UTF-16 order: UTF-8 order unless a key has a char >= U+D800
    for (i = 0; i < n; i++) {
      var e = strBytes(keys[i]);
      if (e === null || e[2]) return null;
      enc[i] = e;
    }
    info = [keys, enc];
    if (record !== null) record.keys = info;
    else topInfo = info;
    return info;
  }
  // one value's bytes at canonPos; false: give up. A container's leaves are written inline (a QuickJS call
  // per leaf was a third of the time); numbers, nil and booleans need at most 9 bytes, kept free below
  function putValue(x, depth) {
    var t = typeof x;
    if (t === "object" && x !== null) return putContainer(x, depth);
    var buf = canonBuf, pos = canonPos;
    if (t === "number") {
      if (x !== x || x === Infinity || x === -Infinity) buf[pos++] = 0xc0; // JSON: null
      else if ((x > TWO53 || x < -TWO53) && x < 1e21 && x > -1e21) return false; // JSON's digits may be inexact
      else { buf[pos] = 0xcb; canonView.setFloat64(pos + 1, x === 0 ? 0 : x); pos += 9; }
    } else if (t === "string") {
      var e = strBytes(x), n;
      if (e === null) return false;
      n = e[1];
      if (pos + n + 16 > canonCap) { room(n + 16); buf = canonBuf; }
      buf.set(e[0], pos);
      pos += n;
    } else if (x === null) buf[pos++] = 0xc0;
    else if (t === "boolean") buf[pos++] = x ? 0xc3 : 0xc2;
    else return false; // undefined, function, symbol, bigint: not what the JSON path gives (or it throws)
    canonPos = pos;
    return true;
  }
  // A Go value's bytes kept (record.tpl) while its traps see no change: its own bytes with its nested values
  // left out, [bytes, child, bytes, ..., bytes], the children written afresh (each has its own). Made at the
  // second digest that finds the value unchanged (1 marks the first, 0: none); any set, define or delete drops it
  function putTemplate(tpl, depth) {
    for (var i = 0; i < tpl.length; i++) {
      if (i & 1) {
        if (!putContainer(tpl[i], depth + 1)) return false;
      } else {
        var b = tpl[i], n = b.length;
        if (canonPos + n + 16 > canonCap) room(n + 16);
        canonBuf.set(b, canonPos);
        canonPos += n;
      }
    }
    return true;
  }
  function template(start, kids) { // kids: [start, child, end, ...] of the children's bytes
    var out = [], from = start, i;
    if (kids !== null) {
      for (i = 0; i < kids.length; i += 3) {
        out[out.length] = canonBuf.slice(from, kids[i]);
        out[out.length] = kids[i + 1];
        from = kids[i + 2];
      }
    }
    out[out.length] = canonBuf.slice(from, canonPos);
    return out;
  }
  function putContainer(v, depth) {
    if (depth > 256) return false;
    var record = depth === 0 ? undefined : GO.get(v), target; // the top level: plain data (exportState unwraps it)
    if (record === undefined) {
      if (depth > 0) return false; // below the top level every object is a Go wrapper (else: not exported)
      record = null;
      target = v;
    } else target = record.t;
    var proto = protoOf(target), array = proto === ArrayProto && isArray(target);
    if (!array && proto !== ObjectProto) return false; // ArrayBuffer, Date, a changed prototype
    var mark = record !== null ? record.tpl : 0;
    if (mark !== 0 && mark !== 1) {
      if (!record.stale || refreshNumbers(record)) return putTemplate(mark, depth);
      mark = record.tpl = 0; // a number that is no longer written as a float64: the value is written afresh
      record.offs = null;
    }
    var i, n, keys = null, enc = null, x, t, e, en, buf, pos, start = canonPos, kids = null, before, slots = null, holes = false;
    if (array) n = target.length;
    else {
      var info = keysOf(target, record);
      if (info === null) return false;
      keys = info[0];
      enc = info[1];
      n = keys.length;
    }
    if (canonPos + 16 > canonCap) room(16);
    if (n === 0) { canonBuf[canonPos++] = 0x80; return true; } // empty: the empty map
    if (keys === null) putHeader(n, 0x90, 0xdc);
    else putHeader(n, 0x80, 0xde);
    buf = canonBuf;
    pos = canonPos;
    for (i = 0; i < n; i++) {
      if (keys === null) {
        if (pos + 16 > canonCap) { canonPos = pos; room(16); buf = canonBuf; }
        x = target[i];
      } else {
        e = enc[i];
        en = e[1];
        if (pos + en + 16 > canonCap) { canonPos = pos; room(en + 16); buf = canonBuf; }
        buf.set(e[0], pos);
        pos += en;
        x = target[keys[i]];
      }
      t = typeof x;
      if (t === "number") {
        if (x !== x || x === Infinity || x === -Infinity) buf[pos++] = 0xc0;
        else if ((x > TWO53 || x < -TWO53) && x < 1e21 && x > -1e21) return false;
        else {
          if (record !== null && kids === null) { // where the float64 sits, while the value may have no nested ones
            if (slots === null) slots = [];
            slots[slots.length] = keys === null ? "" + i : keys[i]; // the key as a trap gets it
            slots[slots.length] = pos - start;
          }
          buf[pos] = 0xcb;
          canonView.setFloat64(pos + 1, x === 0 ? 0 : x);
          pos += 9;
        }
      } else if (x === null || x === undefined) {
        if (x === undefined) {
          if (keys !== null) return false;
          holes = true; // an array's hole: JSON's null, read through the prototype chain (never kept with slots)
        }
        buf[pos++] = 0xc0;
      } else if (t === "boolean") buf[pos++] = x ? 0xc3 : 0xc2;
      else {
        canonPos = before = pos;
        if (!putValue(x, depth + 1)) return false;
        if (t === "object" && record !== null) {
          if (kids === null) kids = [];
          kids[kids.length] = before;
          kids[kids.length] = x;
          kids[kids.length] = canonPos;
        }
        buf = canonBuf;
        pos = canonPos;
      }
    }
    canonPos = pos;
    if (record !== null) {
      if (kids === null && slots !== null && !holes) keepNumbers(record, start, slots);
      else {
        record.tpl = mark === 1 ? template(start, kids) : 1;
        record.offs = null;
        record.stale = false;
      }
    }
    return true;
  }
  // A Go value with numbers and no nested Go values keeps its bytes from their first writing, as a template of one
  // piece, with the place of each float64 (slots: [key, offset, ...]; offs: key -> offset). The traps let a number
  // stored over one of them keep the template (marked stale), and its numbers are written again from the values
  // at the next digest (refreshNumbers): the positions of players and bullets change on every tick.
  function keepNumbers(record, start, slots) {
    var n = canonPos - start, buffer = new NativeArrayBuffer(n), bytes = new U8(buffer), offs = objectCreate(null);
    bytes.set(canonBuf.subarray(start, canonPos));
    for (var i = 0; i < slots.length; i += 2) offs[slots[i]] = slots[i + 1];
    record.tpl = [bytes];
    record.offs = offs; // no prototype: any key looked up is its own
    record.slots = slots;
    record.view = new NativeDataView(buffer);
    record.stale = false;
  }
  function refreshNumbers(record) { // false: a number can no longer be written as a float64
    var slots = record.slots, target = record.t, view = record.view, i, x;
    for (i = 0; i < slots.length; i += 2) {
      x = target[slots[i]];
      if (typeof x !== "number" || x !== x || x === Infinity || x === -Infinity || ((x > TWO53 || x < -TWO53) && x < 1e21 && x > -1e21)) return false;
      view.setFloat64(slots[i + 1] + 1, x === 0 ? 0 : x);
    }
    record.stale = false;
    return true;
  }
  function canonicalOf(data) { // the canonical bytes in hex, or null
    if (!intrinsicsIntact()) return null;
    canonPos = 0; // the buffer always has room for one number or header
    if (!putValue(data, 0)) return null;
    return canonBuf.subarray(0, canonPos).toHex(); // hex: Python reads it 4x faster than base64
  }

  // -- calling callbacks -------------------------------------------------------------------------------------
  // A string handed to Python must be flat: quickjs-ng's binding cannot convert a rope (the lazy result
  // of concatenating long strings: "Unknown quickjs tag: -6"); Array.prototype.join builds a flat one.
  function flat(parts) { return parts.join(""); }
  var slots = new Map();
  var nextSlot = 1;
  var view = null, viewSlot = 0; // the state object the running callback got, and its slot
  function keep(state, inputSlot) { // the returned state as Nakama keeps it: exported to Go values
    var data = state === view && protoOf(state) === ObjectProto ? exportView(state) : exportState(state);
    if (inputSlot && state === view && viewSlot === inputSlot) {
      slots.set(inputSlot, data);
      return inputSlot;
    }
    var id = nextSlot++;
    slots.set(id, data);
    return id;
  }
  function stateOf(slot) {
    if (!slots.has(slot)) throw new Error("nkreplay: unknown state " + slot);
    view = stateView(slots.get(slot));
    viewSlot = slot;
    return view;
  }
  function presences(list) {
    return list.map(function (p) { return { userId: p[0], sessionId: p[1], username: p[2], node: p[3], reason: p[4] }; });
  }
  function messages(list) {
    var out = new Array(list.length), m;
    for (var i = 0; i < list.length; i++) {
      m = list[i];
      out[i] = {
        sender: { userId: m[0], sessionId: m[1], username: m[2], node: m[3] },
        opCode: m[4], data: m[5] === null ? null : fromHex(m[5]).buffer, reliable: m[6], receiveTimeMs: m[7],
      };
    }
    return out;
  }
  function describe(e, callback) {
    var text, stack = "";
    if (e instanceof Error) {
      stack = typeof e.stack === "string" ? e.stack : "";
      var nl = stack.indexOf("\n\tat ");
      var top = nl >= 0 ? stack.slice(nl + 5).split("\n")[0] : "";
      // goja's wording for the commonest crash (QuickJS: "cannot read property 'x' of null"); others differ
      text = String(e).replace(/^TypeError: cannot read property '(.*)' of (?:undefined|null)$/, "TypeError: Cannot read property '$1' of undefined") + (top ? " at " + top : "");
    } else {
      text = String(e) + " at " + callback + " (" + bundleName + ")"; // a thrown non-Error carries no position here
    }
    return { text: text, stack: stack, name: e instanceof Error ? String(e.name) : "throw" };
  }
  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v) && !isBuffer(v); }
  function validState(r, what) {
    if (!("state" in r)) return what + " is expected to return an object with 'state' object property";
    if (!isObject(r.state)) return what + " is expected to return an object with 'state' object property";
    return null;
  }

  // want: also return the new state (the runtime digests most states): 1 as JSON.stringify writes it,
  // 2 its canonical bytes (hex; its JSON instead where canonicalOf gives up)
  define("__nkr_invoke", function __nkr_invoke(module, callback, slot, tick, argsJson, want) {
    var fns = matches[module];
    var args = nativeParse(argsJson);
    var r;
    try {
      var fn = fns[callback];
      if (callback === "matchInit") r = fn(matchCtx, logger, nk, args);
      else {
        var state = stateOf(slot);
        if (callback === "matchJoinAttempt") {
          var ctx = Object.assign({}, matchCtx, args[1]);
          r = fn(ctx, logger, nk, dispatcher, tick, state, { userId: args[0][0], sessionId: args[0][1], username: args[0][2], node: args[0][3] }, args[2]);
        } else if (callback === "matchLoop") r = fn(matchCtx, logger, nk, dispatcher, tick, state, messages(args));
        else if (callback === "matchJoin" || callback === "matchLeave") r = fn(matchCtx, logger, nk, dispatcher, tick, state, presences(args));
        else r = fn(matchCtx, logger, nk, dispatcher, tick, state, args);
      }
    } catch (e) {
      var d = describe(e, (fn && fn.name) || callback); // goja names the function that threw, not the callback
      return flat(["x", JSON.stringify([d.text, d.stack, d.name])]);
    }
    var result = outcome(callback, r, slot);
    var parts = ["r", result.length === 2 && result[0] === null ? "[null," + result[1] + "]" : JSON.stringify(result)];
    if (want && result[1]) {
      var data = slots.get(result[1]), canon = want & 2 ? canonicalOf(data) : null;
      // the state's JSON when asked for, or when its canonical bytes could not be written here
      parts.push("\n", want & 1 || canon === null ? stateJson(data) : "", "\n", canon === null ? "" : canon);
    }
    return flat(parts);
  });

  // what Nakama makes of a callback's return value (server/runtime_javascript_match_core.go, 3.40):
  // [rule error or null, state slot (0: nil state, the match stops quietly), extra...]
  function outcome(callback, r, slot) {
    var nil = r === null || r === undefined;
    var isMap = !nil && typeof r === "object" && !Array.isArray(r) && !isBuffer(r);
    if (callback === "matchInit") {
      if (!isMap) return ["matchInit is expected to return an object with 'state', 'tickRate' and 'label' properties", 0];
      if (!("tickRate" in r)) return ["matchInit return value has no 'tickRate' property", 0];
      if (typeof r.tickRate !== "number" || !Number.isInteger(r.tickRate) || r.tickRate < 1 || r.tickRate > 60)
        return ["matchInit 'tickRate' must be a number between 1 and 60", 0];
      if ("label" in r && typeof r.label !== "string") return ["matchInit 'label' value must be a string", 0];
      if (!("state" in r)) return ["matchInit is expected to return an object with a 'state' property", 0];
      if (r.state === null || r.state === undefined) return ["Match initial state must not be nil", 0];
      matchCtx.matchLabel = "label" in r ? r.label : "";
      matchCtx.matchTickRate = r.tickRate;
      return [null, keep(r.state, 0), r.tickRate, "label" in r ? r.label : ""];
    }
    if (callback === "matchTerminate" || callback === "matchSignal") {
      // 3.40 exports the value before looking for null: null is an error here, not a quiet stop
      if (!isMap) return [callback + " is expected to return an object with 'state' property", 0];
    } else if (nil) {
      return [null, 0];
    }
    if (callback === "matchJoinAttempt") {
      if (!isMap) return ["matchJoinAttempt is expected to return an object with 'state' and 'accept' properties", 0];
      if (!("accept" in r)) return ["matchJoinAttempt return value has an 'accept' property", 0];
      if (typeof r.accept !== "boolean") return ["matchJoinAttempt 'accept' property must be a boolean", 0];
      var reason = "";
      if (!r.accept && "rejectMessage" in r) {
        if (typeof r.rejectMessage !== "string") return ["matchJoinAttempt 'rejectMessage' property must be a string", 0];
        reason = r.rejectMessage;
      }
      var bad = validState(r, "matchJoinAttempt");
      return bad ? [bad, 0] : [null, keep(r.state, slot), r.accept, reason];
    }
    if (!isMap) return [callback + " is expected to return an object with 'state' property", 0];
    if (callback === "matchSignal") {
      if (!("state" in r)) return ["matchSignal is expected to return an object with 'state' property", 0];
      if (!isObject(r.state)) return ["matchSignal is expected to return an object with 'state' object property", 0];
      if ("data" in r && typeof r.data !== "string") return ["matchSignal 'data' property must be a string", 0];
      return [null, keep(r.state, slot), "data" in r ? r.data : ""];
    }
    var problem = validState(r, callback);
    // matchLoop's check for a non-object state names matchLeave in 3.40 (a copy-paste slip, kept)
    if (problem && callback === "matchLoop" && "state" in r) problem = problem.replace("matchLoop", "matchLeave");
    return problem ? [problem, 0] : [null, keep(r.state, slot)];
  }

  // a kept state's JSON text, or "!" and why JSON.stringify refused it (a cycle, a BigInt, a toJSON that
  // throws): Nakama never writes a state as JSON, so that is no crash of the match, only a state the
  // replay cannot digest
  function stateJson(data) {
    try {
      return JSON.stringify(data);
    } catch (e) {
      try {
        return "!" + String(e);
      } catch (e2) {
        return "!an error that has no text";
      }
    }
  }
  define("__nkr_json", function __nkr_json(slot) { return stateJson(slots.get(slot)); });
  define("__nkr_canonical", function __nkr_canonical(slot) { return canonicalOf(slots.get(slot)); });
  function deepCopy(v, seen) { // a kept state copied, wrappers and aliasing included
    if (v === null || typeof v !== "object") return v;
    if (seen.has(v)) return seen.get(v);
    var record = GO.get(v), target = record === undefined ? undefined : record.t;
    var source = target === undefined ? v : target, out;
    if (Array.isArray(source)) out = [];
    else if (isBuffer(source)) return source.slice(0);
    else if (source instanceof NativeDate) return new NativeDate(source.getTime());
    else out = Object.create(Object.getPrototypeOf(source));
    var copy = target === undefined ? out : wrap(out, Array.isArray(source) ? sliceTraps : mapTraps);
    seen.set(v, copy);
    Object.keys(source).forEach(function (k) { out[k] = deepCopy(source[k], seen); });
    return copy;
  }
  define("__nkr_copy", function __nkr_copy(slot) { var id = nextSlot++; slots.set(id, deepCopy(slots.get(slot), new Map())); return id; });
  define("__nkr_free", function __nkr_free(idsJson) { nativeParse(idsJson).forEach(function (id) { slots.delete(id); }); });
  define("__nkr_set_ctx", setCtx);
  define("__nkr_rpc", function __nkr_rpc(id, ctxJson, payload) {
    var fn = rpcs[id];
    if (!fn) return flat(["x", JSON.stringify(["RPC function not found", "", "GoError"])]);
    try {
      var out = fn(nativeParse(ctxJson), logger, nk, payload);
      return flat(["r", JSON.stringify([null, out === undefined || out === null ? "" : String(out)])]);
    } catch (e) {
      var d = describe(e, fn.name || id);
      return flat(["x", JSON.stringify([d.text, d.stack, d.name])]);
    }
  });
  // QuickJS's clock and GC hooks that goja does not have: a real clock (performance.now) or collection timing
  // (WeakRef, FinalizationRegistry) would make a replay nondeterministic; a bundle using them fails in Nakama too
  ["performance", "WeakRef", "FinalizationRegistry"].forEach(function (name) { delete g[name]; });
  void nativeRandom;
})(globalThis);
