"""A timeline as one self-contained HTML page: the data as JSON, the script and the style inlined.

The page loads nothing: no network, no library, no font; it opens from disk (``file://``). The drawing is
hand-written canvas code (``static/timeline.js``, about 450 lines): a charting library would bring tens of
kilobytes and its own idea of zoom levels, where the page needs one thing done well, a density pyramid
read at one sample per pixel column (see the script's header).
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from replay.timeline._model import REASONS, Timeline
from replay.timeline._text import comparison_text

__all__ = ["render_html"]


def _static(name: str) -> str:
    return resources.files("replay.timeline").joinpath("static", name).read_text(encoding="utf-8")


def _script_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element: no "</", no "<!--", no line separators."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray)):
        import base64

        return {"b64": base64.b64encode(bytes(o)).decode("ascii"), "size": len(o)}
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return repr(o)


def _page_data(tl: Timeline) -> dict[str, Any]:
    data = tl.to_json()
    data["reasons"] = REASONS
    return data


def _comparison_line(d: dict[str, Any]) -> str:
    text = f"{comparison_text(d)} ({d.get('a')} vs {d.get('b')})"
    status = html.escape(str(d.get("status")))
    return f'<div class="diverge-line" id="comparison" data-status="{status}">{html.escape(text)}</div>'


def render_html(tl: Timeline, title: str | None = None) -> str:
    """The page for ``tl``."""
    r = tl.recording
    name = title or f"{r.get('file') or 'recording'}: match timeline"
    players = len(tl.lanes)
    rate = r.get("tick_rate") or 0
    seconds = f", {tl.ticks / rate:.1f} s at {rate} Hz" if rate else ""
    sub = (
        f"match {r.get('match_id') or '-'} · module {r.get('module') or '-'} · source {r.get('source') or '-'} · "
        f"ticks {tl.first_tick}..{tl.last_tick}{seconds} · {players} player{'s' if players != 1 else ''} · "
        f"{tl.calls} calls"
    )
    lines = [f'<div class="sub">{html.escape(sub)}</div>']
    if tl.slice:
        s = tl.slice
        lines.append(
            f'<div class="sub">a slice of ticks {s.get("from_tick")}..{s.get("to_tick")} of '
            f"{html.escape(str(s.get('of_file') or s.get('of_match') or 'a recording'))}</div>"
        )
    if tl.crash:
        c = tl.crash
        first = c["error"].splitlines()[0] if c["error"] else "(no error text recorded)"
        lines.append(
            f'<div class="crash-line">crash in {html.escape(c["callback"])} at tick {c["tick"]}: '
            f"{html.escape(first)}</div>"
        )
    if tl.divergence:
        lines.append(_comparison_line(tl.divergence))
    if tl.integrity is not None and not tl.complete:
        lines.append(
            f'<div class="warn" id="integrity-warning">incomplete recording: only its intact part is shown '
            f"({html.escape(tl.integrity.get('summary', ''))})</div>"
        )
    if tl.bucket > 1:
        lines.append(f'<div class="sub">densities summed over {tl.bucket} ticks per sample</div>')
    buttons = [
        '<button id="zoom-in" title="zoom in (+)">+</button>',
        '<button id="zoom-out" title="zoom out (-)">\u2212</button>',
        '<button id="zoom-fit" title="the whole match (0)">fit</button>',
    ]
    if tl.crash:
        buttons.append('<button id="go-crash" title="go to the crash (c)">crash</button>')
    if tl.divergence and tl.divergence.get("tick") is not None:
        buttons.append('<button id="go-divergence" title="go to the first divergence">divergence</button>')
    legend = (
        "<span>\u25b6 join</span> <span>R reconnect (a new session of the same user)</span>"
        '<span style="color:#f08c00">\u25a0 overlapping sessions</span> <span>\u2715 disconnect</span>'
        "<span>\u25a0 leave</span> <span>K kick</span> <span>\u2298 join rejected</span> <span>S signal</span>"
        '<span>L label update</span> <span style="color:#d62d2d">\u2716 crash</span>'
        '<span style="color:#8a3ffc">\u2260 first divergence</span>'
        "<span>wheel: zoom · drag or shift+wheel: pan · hover: a tick's calls</span>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="nakama-replay view">
<title>{html.escape(name)}</title>
<style>
{_static("timeline.css")}
</style>
</head>
<body>
<header>
<h1>{html.escape(name)}</h1>
{chr(10).join(lines)}
</header>
<div id="toolbar">{"".join(buttons)}<span class="readout" id="readout"></span></div>
<div id="legend">{legend}</div>
<div id="chart"><div id="labels" aria-label="lanes"></div><div id="plot"><canvas id="canvas" role="img"
aria-label="match timeline"></canvas></div></div>
<section id="details" aria-live="polite"></section>
<script type="application/json" id="timeline-data">{_script_json(_page_data(tl))}</script>
<script>
{_static("timeline.js")}
</script>
</body>
</html>
"""
