/* nakama-replay timeline: canvas drawing over one tick axis (replay/timeline/html.py inlines this file).
 *
 * Densities are drawn from a pyramid of levels (level k: the maximum over 2^k samples), so a frame costs
 * about one read per pixel column and series whatever the zoom: 36,000 ticks pan and zoom as smoothly as
 * 60. Lanes and markers are few and drawn directly. The page needs no network and no library. The hovered
 * tick's calls are built into #details on demand. window.nkTimeline exposes the data and the mapping
 * between ticks and pixels for tests and for the curious. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("timeline-data").textContent);
  var REASONS = { 0: "unknown", 1: "join", 2: "update", 3: "leave", 4: "disconnect" };
  var PALETTE = ["#3d7be0", "#12a37f", "#e0a100", "#c2419b", "#6a5acd", "#2aa2c8", "#d9622b", "#7a8b2c"];
  var AXIS_H = 26, EVENT_H = 22, LANE_H = 24, DENSITY_H = 30, GAP = 6;
  var first = DATA.first_tick, last = DATA.last_tick, bucket = DATA.bucket || 1;
  var total = last - first + 1;

  var canvas = document.getElementById("canvas");
  var ctx = canvas.getContext("2d");
  var plot = document.getElementById("plot");
  var labels = document.getElementById("labels");
  var details = document.getElementById("details");
  var readout = document.getElementById("readout");

  // ---- rows -------------------------------------------------------------------------------------
  var rows = [];
  var y = AXIS_H;
  rows.push({ kind: "events", y: y, h: EVENT_H, label: "events", note: "signals, labels, kicks" });
  y += EVENT_H + GAP;
  DATA.lanes.forEach(function (lane) {
    rows.push({ kind: "lane", y: y, h: LANE_H, lane: lane, label: lane.username || lane.user_id,
                note: lane.client_version ? "client " + lane.client_version : "" });
    y += LANE_H;
  });
  y += GAP;
  var seriesNames = Object.keys(DATA.densities);
  seriesNames.forEach(function (name, i) {
    var values = DATA.densities[name];
    rows.push({ kind: "density", y: y, h: DENSITY_H, name: name, levels: pyramid(values),
                color: name === "broadcasts" ? "#59616f" : name === "nondeterministic" ? "#b07d2b" : PALETTE[i % PALETTE.length],
                label: name === "broadcasts" ? "broadcasts" : name === "nondeterministic" ? "nondeterministic in" : "messages " + name,
                note: "max " + maxOf(values) });
    y += DENSITY_H;
  });
  var HEIGHT = y + 8;

  function maxOf(a) { var m = 0; for (var i = 0; i < a.length; i++) if (a[i] > m) m = a[i]; return m; }

  function pyramid(values) {
    var levels = [Uint32Array.from(values)];
    while (levels[levels.length - 1].length > 1) {
      var prev = levels[levels.length - 1], next = new Uint32Array(Math.ceil(prev.length / 2));
      for (var i = 0; i < next.length; i++) {
        var a = prev[2 * i], b = 2 * i + 1 < prev.length ? prev[2 * i + 1] : 0;
        next[i] = a > b ? a : b;
      }
      levels.push(next);
    }
    return levels;
  }

  rows.forEach(function (r) {
    var el = document.createElement("div");
    el.className = "row-label " + r.kind;
    el.style.top = r.y + "px";
    el.style.height = r.h + "px";
    if (r.kind === "lane") {
      el.dataset.userId = r.lane.user_id;
      el.dataset.sessions = r.lane.sessions.length;
    }
    if (r.kind === "density") el.dataset.series = r.name;
    if (r.color) {
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = r.color;
      el.appendChild(sw);
    }
    var name = document.createElement("span");
    name.textContent = r.label;
    el.appendChild(name);
    if (r.note) {
      var note = document.createElement("small");
      note.textContent = r.note;
      el.appendChild(note);
    }
    el.title = r.label + (r.note ? " (" + r.note + ")" : "");
    labels.appendChild(el);
  });
  labels.style.height = HEIGHT + "px";

  // ---- the view: which ticks are on screen ---------------------------------------------------------
  var view = { start: first, span: Math.max(total, 1) };
  var width = 800, dpr = 1, hoverTick = null, dirty = true, dragging = null;
  var MIN_SPAN = Math.min(total, 8);

  function resize() {
    dpr = window.devicePixelRatio || 1;
    width = Math.max(200, plot.clientWidth);
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(HEIGHT * dpr);
    canvas.style.height = HEIGHT + "px";
    dirty = true;
  }
  function xOf(tick) { return (tick - view.start) / view.span * width; }
  function tickAt(x) { return Math.floor(view.start + x / width * view.span); }
  function clampView() {
    view.span = Math.min(Math.max(view.span, MIN_SPAN), total);
    view.start = Math.min(Math.max(view.start, first), first + total - view.span);
  }
  function zoom(factor, atX) {
    var anchor = view.start + atX / width * view.span;
    view.span *= factor;
    clampView();
    view.start = anchor - atX / width * view.span;
    clampView();
    dirty = true;
  }
  function pan(dx) { view.start -= dx / width * view.span; clampView(); dirty = true; }
  function focus(tick, span) {
    view.span = span || Math.min(total, Math.max(MIN_SPAN, 120));
    view.start = tick - view.span * 0.7;
    clampView();
    dirty = true;
  }

  // ---- drawing ---------------------------------------------------------------------------------------
  function draw() {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    ctx.font = "11px system-ui, sans-serif";
    drawAxis();
    rows.forEach(function (r) {
      ctx.fillStyle = r.kind === "lane" && (rows.indexOf(r) % 2) ? "#f7f8fb" : "#ffffff";
      ctx.fillRect(0, r.y, width, r.h);
      if (r.kind === "lane") drawLane(r);
      else if (r.kind === "density") drawDensity(r);
      else drawEvents(r);
    });
    drawVertical(DATA.divergence && DATA.divergence.tick, "#8a3ffc", [5, 3]);
    drawVertical(DATA.crash && DATA.crash.tick, "#d62d2d", []);
    if (hoverTick !== null) {
      var hx = xOf(hoverTick), hw = Math.max(1, xOf(hoverTick + 1) - hx);
      ctx.fillStyle = "rgba(29,35,48,0.10)";
      ctx.fillRect(hx, AXIS_H, hw, HEIGHT - AXIS_H);
    }
    placeMarkers();
    var end = Math.min(last, Math.floor(view.start + view.span - 1e-9));
    readout.textContent = "ticks " + Math.floor(view.start) + "\u2013" + end + " of " + first + "\u2013" + last +
      (hoverTick !== null ? "  \u00b7  tick " + hoverTick : "");
  }

  function niceStep(span) {
    var raw = span / Math.max(1, width / 90), p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return Math.max(1, (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p);
  }
  function drawAxis() {
    var step = niceStep(view.span);
    ctx.fillStyle = "#6b7385";
    ctx.strokeStyle = "#dde1ea";
    ctx.beginPath();
    for (var t = Math.ceil(view.start / step) * step; t <= view.start + view.span; t += step) {
      var x = Math.round(xOf(t)) + 0.5;
      ctx.moveTo(x, AXIS_H - 6); ctx.lineTo(x, HEIGHT);
      ctx.fillText(String(t), x + 3, 14);
    }
    ctx.stroke();
  }
  function drawVertical(tick, color, dash) {
    if (tick === null || tick === undefined) return;
    var x = xOf(tick), w = Math.max(2, xOf(tick + 1) - x);
    if (x + w < 0 || x > width) return;
    ctx.save();
    ctx.fillStyle = color;
    ctx.globalAlpha = 0.18;
    ctx.fillRect(x, AXIS_H, w, HEIGHT - AXIS_H);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = color;
    ctx.setLineDash(dash);
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x + w / 2, AXIS_H); ctx.lineTo(x + w / 2, HEIGHT); ctx.stroke();
    ctx.restore();
  }
  function drawLane(r) {
    var mid = r.y + r.h / 2;
    r.lane.sessions.forEach(function (s, i) {
      var a = s.join_tick === null ? first : s.join_tick;
      var b = s.leave_tick === null ? last + 1 : s.leave_tick + 1;
      var x0 = Math.max(-2, xOf(a)), x1 = Math.min(width + 2, xOf(b));
      if (x1 < 0 || x0 > width) return;
      ctx.fillStyle = s.overlaps ? "#f08c00" : s.reconnect ? "#5f9be8" : "#3d7be0";
      ctx.globalAlpha = s.leave_tick === null ? 0.85 : 0.7;
      ctx.fillRect(x0, mid - 6 + (i % 2) * 2, Math.max(1.5, x1 - x0), 10);
      ctx.globalAlpha = 1;
      if (s.join_tick !== null && xOf(s.join_tick) >= -2) glyph(xOf(s.join_tick), mid, s.reconnect ? "R" : "\u25B6", "#1d2330");
      if (s.leave_tick !== null) glyph(xOf(s.leave_tick + 1), mid, s.leave_reason === 4 ? "\u2715" : "\u25A0", "#1d2330");
      if (s.kicked_tick !== null) glyph(xOf(s.kicked_tick) + 2, mid, "K", "#d62d2d");
    });
    r.lane.rejected.forEach(function (j) { glyph(xOf(j.tick), mid, "\u2298", "#a15c00"); });
  }
  function glyph(x, y, text, color) {
    if (x < -10 || x > width + 10) return;
    ctx.fillStyle = color;
    ctx.fillText(text, x + 1, y + 4);
  }
  function drawDensity(r) {
    var samplesPerPx = view.span / bucket / width;
    var level = Math.max(0, Math.min(r.levels.length - 1, Math.floor(Math.log2(Math.max(1, samplesPerPx)))));
    var arr = r.levels[level], scale = 1 << level, peak = r.levels[r.levels.length - 1][0] || 1;
    ctx.fillStyle = r.color;
    var base = r.y + r.h - 3, room = r.h - 6;
    var step = Math.max(1, Math.floor(width / Math.max(1, view.span / bucket)));
    for (var x = 0; x < width; x += step) {
      var s0 = Math.floor((view.start + x / width * view.span - first) / bucket / scale);
      var s1 = Math.floor((view.start + (x + step) / width * view.span - first - 1e-9) / bucket / scale);
      var m = 0;
      for (var s = Math.max(0, s0); s <= s1 && s < arr.length; s++) if (arr[s] > m) m = arr[s];
      if (m > 0) {
        var h = Math.max(1.5, m / peak * room);
        var w = step > 2 ? step - 1 : step;
        ctx.fillRect(x, base - h, w, h);
      }
    }
  }
  var EVENT_COLORS = { signal: "#2aa2c8", label: "#7a8b2c", terminate: "#59616f", stopped: "#59616f", kick: "#d62d2d",
                       reject: "#a15c00" };
  var EVENT_GLYPHS = { signal: "S", label: "L", terminate: "T", stopped: "\u25A0", kick: "K", reject: "\u2298" };
  function drawEvents(r) {
    var mid = r.y + r.h / 2, lastX = -100;
    DATA.markers.forEach(function (m) {
      if (m.kind === "crash" || m.kind === "divergence") return;
      var x = xOf(m.tick);
      if (x < -10 || x > width + 10 || x - lastX < 3) return;
      lastX = x;
      glyph(x, mid, EVENT_GLYPHS[m.kind] || "\u2022", EVENT_COLORS[m.kind] || "#1d2330");
    });
  }

  // ---- DOM markers over the canvas (crash, divergence): hoverable, clickable -------------------------
  var markerEls = [];
  function addMarker(id, tick, text, title) {
    if (tick === null || tick === undefined) return;
    var el = document.createElement("button");
    el.id = id;
    el.className = "vmarker";
    el.dataset.tick = tick;
    el.textContent = text;
    el.title = title;
    el.setAttribute("aria-label", title);
    el.addEventListener("mouseenter", function () { setHover(tick); });
    el.addEventListener("focus", function () { setHover(tick); });
    el.addEventListener("click", function () { focus(tick); setHover(tick); });
    plot.appendChild(el);
    markerEls.push(el);
  }
  function placeMarkers() {
    markerEls.forEach(function (el) {
      var t = Number(el.dataset.tick), x = xOf(t + 0.5);
      // a divergence at the crash tick sits beside the crash marker, not under it
      if (el.id === "divergence-marker" && DATA.crash && DATA.crash.tick === t) x -= 16;
      el.style.left = x + "px";
      el.style.top = (AXIS_H - 20) + "px";
      el.style.display = x < -8 || x > width + 8 ? "none" : "block";
    });
  }
  if (DATA.crash) addMarker("crash-marker", DATA.crash.tick, "\u2716", "crash at tick " + DATA.crash.tick + ": " + firstLine(DATA.crash.error));
  if (DATA.divergence && DATA.divergence.tick !== null && DATA.divergence.tick !== undefined)
    addMarker("divergence-marker", DATA.divergence.tick, "\u2260", "first divergence at tick " + DATA.divergence.tick);

  // ---- details of a tick ---------------------------------------------------------------------------
  function firstLine(s) { return s ? String(s).split("\n")[0] : "(no error text recorded)"; }
  function h(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  }
  function bytesOf(p) {
    var bin = atob(p.b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function hex(bytes) {
    var parts = [];
    for (var i = 0; i < bytes.length; i++) parts.push((bytes[i] < 16 ? "0" : "") + bytes[i].toString(16));
    return "hex " + parts.join(" ");
  }
  function payloadText(p) {
    if (p === null || p === undefined) return "nil";
    var bytes = bytesOf(p), note = p.cut ? " ... (" + p.size + " bytes, first " + bytes.length + " shown)" : "";
    if (!bytes.length) return '""';
    var text;
    try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch (e) { return hex(bytes) + note; }
    try { return JSON.stringify(JSON.parse(text), null, 2) + note; } catch (e) { /* not JSON */ }
    if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) return hex(bytes) + note;
    return JSON.stringify(text) + note;
  }
  function valueText(v) {
    if (v && typeof v === "object" && typeof v.b64 === "string" && "size" in v) return payloadText(v);
    return JSON.stringify(v, function (k, x) {
      return x && typeof x === "object" && typeof x.b64 === "string" && "size" in x ? payloadText(x) : x;
    }, 2);
  }
  function who(p) { return p.name + " (session " + p.session_id.slice(0, 8) + ")"; }
  function kv(table, k, v, pre) {
    var tr = h("tr"), td = h("td");
    tr.appendChild(h("td", "k", k));
    if (pre) td.appendChild(h("pre", "", v)); else td.textContent = v;
    tr.appendChild(td);
    table.appendChild(tr);
  }
  function presencesAt(tick) {
    var out = [];
    DATA.lanes.forEach(function (lane) {
      lane.sessions.forEach(function (s) {
        var a = s.join_tick === null ? first : s.join_tick, b = s.leave_tick === null ? Infinity : s.leave_tick;
        if (a <= tick && tick <= b) out.push((s.username || lane.username) + (s.leave_tick === tick ? " (leaving)" : ""));
      });
    });
    return out;
  }
  function renderCall(c) {
    var box = h("div", "call"), t = h("table");
    box.appendChild(h("h3", "", c.callback));
    if (c.messages) {
      if (!c.messages.length) kv(t, "messages", "none");
      c.messages.forEach(function (m, i) {
        kv(t, "#" + i + " op " + m.op + " from " + m.from + (m.reliable ? "" : " (unreliable)"), payloadText(m.data), true);
      });
    }
    if (c.presence) kv(t, "presence", who(c.presence));
    if (c.metadata && Object.keys(c.metadata).length) kv(t, "metadata", valueText(c.metadata), true);
    if (c.vars) kv(t, "vars", valueText(c.vars), true);
    if (c.presences) c.presences.forEach(function (p) {
      kv(t, c.callback === "match_leave" ? "leaves" : "joins", who(p) + (c.callback === "match_leave" ? ", reason " + p.reason + " (" + (REASONS[p.reason] || "?") + ")" : ""));
    });
    if (c.data !== undefined) kv(t, "data", c.data, true);
    if (c.grace_seconds !== undefined) kv(t, "grace", c.grace_seconds + " s");
    if (c.params) kv(t, "params", valueText(c.params), true);
    if (c.nondeterministic) c.nondeterministic.forEach(function (n) { kv(t, "consumed " + n.source, valueText(n.value)); });
    var o = c.outcome;
    if (o) {
      if (o.accept !== undefined) kv(t, "verdict", o.accept ? "accepted" : "rejected" + (o.reason ? ": " + o.reason : ""));
      if (o.broadcasts) o.broadcasts.forEach(function (b, i) {
        kv(t, "broadcast #" + i + " op " + b.op + (b.to ? " to " + b.to.join(", ") : " to all") + (b.deferred ? " (deferred)" : ""),
           payloadText(b.data), true);
      });
      if (o.kicks) o.kicks.forEach(function (p) { kv(t, "kicks", who(p)); });
      if (o.label_updates) o.label_updates.forEach(function (l) { kv(t, "label", l, true); });
      if (o.reply !== undefined) kv(t, "reply", o.reply, true);
      if (o.stopped) kv(t, "stopped", "returned no state: the match stopped");
      if (o.digest) kv(t, "state digest", o.digest + (o.snapshot_bytes ? " (snapshot " + o.snapshot_bytes + " bytes)" : ""));
    }
    box.appendChild(t);
    return box;
  }
  function renderCrash(c) {
    var box = h("div", "call crash");
    box.id = "crash-detail";
    box.appendChild(h("h3", "", "CRASH in " + c.callback + " at tick " + c.tick));
    box.appendChild(h("pre", "error", c.error || "(no error text recorded)"));
    if (c.traceback && c.traceback !== c.error) box.appendChild(h("pre", "", c.traceback));
    return box;
  }
  function renderDivergence(d) {
    var box = h("div", "call divergence"), t = h("table");
    box.id = "divergence-detail";
    box.appendChild(h("h3", "", (d.ended_early ? "NOT COMPARED PAST " : "FIRST DIVERGENCE in ") + d.callback + " at tick " + d.tick));
    kv(t, "a", d.a);
    kv(t, "b", d.b);
    (d.outcomes || []).forEach(function (o) { kv(t, o.field, "a: " + valueText(o.a) + "\nb: " + valueText(o.b), true); });
    (d.paths || []).forEach(function (p) {
      var a = p.missing === "a" ? "<missing>" : valueText(p.a), b = p.missing === "b" ? "<missing>" : valueText(p.b);
      kv(t, p.path || "(the whole state)", "a: " + a + "\nb: " + b, true);
    });
    if (d.path_count > (d.paths || []).length) kv(t, "...", (d.path_count - d.paths.length) + " more state paths");
    if (d.note) kv(t, "note", d.note);
    box.appendChild(t);
    return box;
  }
  function setHover(tick) {
    if (tick === hoverTick) return;
    hoverTick = tick;
    dirty = true;
    showTick(tick);
  }
  function showTick(tick) {
    details.textContent = "";
    if (tick === null) { details.appendChild(h("p", "hint", "Hover a tick to see its calls.")); return; }
    var rate = DATA.recording.tick_rate;
    details.appendChild(h("h2", "", "tick " + tick + (rate ? "  (" + (tick / rate).toFixed(2) + " s)" : "")));
    details.dataset.tick = tick;
    var here = presencesAt(tick);
    details.appendChild(h("p", "hint", "in the match: " + (here.length ? here.join(", ") : "nobody")));
    if (DATA.divergence && DATA.divergence.tick === tick) details.appendChild(renderDivergence(DATA.divergence));
    if (DATA.crash && DATA.crash.tick === tick) details.appendChild(renderCrash(DATA.crash));
    DATA.markers.forEach(function (m) {
      if (m.tick === tick && m.kind !== "crash" && m.kind !== "divergence") details.appendChild(h("p", "", "\u2022 " + m.text));
    });
    var calls = DATA.details[String(tick)];
    if (calls) calls.forEach(function (c) { details.appendChild(renderCall(c)); });
    else {
      var counts = [];
      seriesNames.forEach(function (name) {
        var v = DATA.densities[name][Math.floor((tick - first) / bucket)];
        if (v) counts.push(name + ": " + v);
      });
      details.appendChild(h("p", "hint", (counts.length ? counts.join(", ") + (bucket > 1 ? " (in ticks " + (first + Math.floor((tick - first) / bucket) * bucket) + "+" + bucket + ")" : "") + ". " : "No calls recorded at this tick. ") +
        (DATA.detail_ticks < DATA.detail_ticks_total ? "This page embeds the calls of " + DATA.detail_ticks + " of " + DATA.detail_ticks_total +
          " ticks (those nearest the crash, divergence and presence changes); run: nakama-replay inspect " + DATA.recording.file + " --tick " + tick : "")));
    }
  }

  // ---- input -----------------------------------------------------------------------------------------
  function localX(ev) { return ev.clientX - canvas.getBoundingClientRect().left; }
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) pan(-(ev.deltaX || ev.deltaY));
    else zoom(Math.exp(ev.deltaY * 0.0015), localX(ev));
  }, { passive: false });
  canvas.addEventListener("pointerdown", function (ev) { dragging = { x: ev.clientX }; canvas.setPointerCapture(ev.pointerId); });
  canvas.addEventListener("pointerup", function (ev) { dragging = null; canvas.releasePointerCapture(ev.pointerId); });
  canvas.addEventListener("pointermove", function (ev) {
    if (dragging) { pan(ev.clientX - dragging.x); dragging.x = ev.clientX; return; }
    var t = tickAt(localX(ev));
    if (t >= first && t <= last) setHover(t);
  });
  window.addEventListener("keydown", function (ev) {
    if (ev.target && /INPUT|TEXTAREA/.test(ev.target.tagName)) return;
    var k = ev.key;
    if (k === "+" || k === "=") zoom(0.7, width / 2);
    else if (k === "-") zoom(1 / 0.7, width / 2);
    else if (k === "ArrowLeft") pan(width * 0.2);
    else if (k === "ArrowRight") pan(-width * 0.2);
    else if (k === "0") { view.start = first; view.span = total; clampView(); dirty = true; }
    else if (k === "c" && DATA.crash) { focus(DATA.crash.tick); setHover(DATA.crash.tick); }
  });
  function button(id, fn) { var b = document.getElementById(id); if (b) b.addEventListener("click", fn); }
  button("zoom-in", function () { zoom(0.5, width / 2); });
  button("zoom-out", function () { zoom(2, width / 2); });
  button("zoom-fit", function () { view.start = first; view.span = total; clampView(); dirty = true; });
  button("go-crash", function () { if (DATA.crash) { focus(DATA.crash.tick); setHover(DATA.crash.tick); } });
  button("go-divergence", function () {
    if (DATA.divergence && DATA.divergence.tick !== null) { focus(DATA.divergence.tick); setHover(DATA.divergence.tick); }
  });
  window.addEventListener("resize", resize);

  function frame() {
    if (dirty) { dirty = false; draw(); }
    window.requestAnimationFrame(frame);
  }
  resize();
  clampView();
  showTick(DATA.crash ? DATA.crash.tick : DATA.divergence && DATA.divergence.tick !== null ? DATA.divergence.tick : null);
  draw();
  window.requestAnimationFrame(frame);

  window.nkTimeline = {
    data: DATA, rows: rows, view: view,
    xOf: function (tick) { return xOf(tick + 0.5); },
    tickAt: tickAt,
    setView: function (start, span) { view.start = start; view.span = span; clampView(); dirty = true; draw(); },
    showTick: function (tick) { setHover(tick); },
    redraw: function () { draw(); },
    ready: true,
  };
})();
