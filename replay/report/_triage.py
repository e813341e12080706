"""The text of the crash store's commands (``triage ingest|groups|show|fixed``), from what the store returns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replay.triage._ingest import IngestReport

__all__ = ["format_triage_fixed", "format_triage_group", "format_triage_groups", "format_triage_ingest"]


def format_triage_ingest(report: IngestReport, target: str, totals: dict[str, int]) -> str:
    """What ``triage ingest`` read and stored into the store at ``target``, the store's totals and the bad
    items it skipped (the first 20)."""
    read = ", ".join(f"{n} {kind}" for kind, n in sorted(report.read.items())) or "nothing"
    lines = [
        f"store      {target}",
        f"read       {read}",
        f"stored     {report.added} new, {report.duplicates} already stored; {report.links} new links; "
        f"{report.recordings} recordings indexed"
        + (f"; {report.regressions} regressions" if report.regressions else ""),
        f"totals     {totals['reports']} reports in {totals['groups']} groups, {totals['links']} links, "
        f"{totals['recordings']} recordings",
    ]
    bad = [str(e) for e in report.bad] + list(report.bad_recordings)
    if bad:
        lines.append(f"skipped    {len(bad)} bad items:")
        lines.extend(f"  {text}" for text in bad[:20])
        if len(bad) > 20:
            lines.append(f"  ... and {len(bad) - 20} more (--json lists all)")
    return "\n".join(lines) + "\n"


def format_triage_groups(
    groups: list[dict[str, Any]], target: str, totals: dict[str, int], filters: dict[str, Any]
) -> str:
    """``triage groups``: the store, the filters, then each crash group with its facets, links and fix mark."""
    head = [
        f"store      {target} ({totals['reports']} reports, {totals['groups']} groups, {totals['links']} links, "
        f"{totals['recordings']} recordings)"
    ]
    if filters:
        head.append(
            "filters    " + ", ".join(f"{k} {v}" for k, v in filters.items()) + " (counts are of matching reports)"
        )
    if not groups:
        return (
            "\n".join([*head, "", "no groups" + (" match these filters" if filters else " yet: run `triage ingest`")])
            + "\n"
        )
    lines = [*head, ""]
    for g in groups:
        lines.extend(_group_lines(g))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


#: A group's facets as the reports show them: (label, key in the group's JSON).
_FACETS = (
    ("versions", "versions"),
    ("platforms", "platforms"),
    ("op codes", "op_codes"),
    ("rpcs", "rpcs"),
    ("socket", "socket_states"),
    ("storage", "storage"),
)


def format_triage_group(d: dict[str, Any]) -> str:
    """``triage show``: one group in full, with its evidence, latest reports, matches, recordings and the
    command that reproduces it."""
    lines = [f"group      {d['group']} ({d['side']})", f"signature  {d.get('signature') or '-'}"]
    if d.get("frames"):
        lines.append(f"frames     {' < '.join(d['frames'])}")
    lines.append(
        f"count      {d['count']} occurrences, first {_time(d.get('first_seen_ms'))}, last {_time(d.get('last_seen_ms'))}"
    )
    for label, key in _FACETS:
        if d.get(key):
            lines.append(f"{label:<10} {_facet(d[key], 20)}")
    if d.get("fixed_in"):
        lines.append(
            f"fixed in   {d['fixed_in']}"
            + (f", REGRESSED: {d['regressions']} occurrences at or after it" if d.get("regressions") else "")
        )
    if d.get("downstream_of"):
        lines.append("downstream of server group:")
        lines.extend(f"  {x['group']}: {x['count']} of {d['total']} reports" for x in d["downstream_of"])
    if d.get("client_symptoms"):
        lines.append("client symptoms (client groups downstream of this one):")
        lines.extend(f"  {x['group']}: {x['count']} reports" for x in d["client_symptoms"])
    if d.get("links_list"):
        lines.append("evidence (first links):")
        for link in d["links_list"][:10]:
            ticks = f", {link['delta_ticks']} ticks" if link["delta_ticks"] is not None else ""
            where = f"rpc {link['rpc_id']}" if link["rule"] == "rpc" else f"match {link['match_key']}"
            lines.append(
                f"  {where}: client {link['client_uid']} {link['delta_ms']} ms{ticks} after "
                f"server {link['server_uid']} (rule {link['rule']})"
            )
    if d.get("examples"):
        lines.append("latest:")
        for e in d["examples"]:
            where = f"{e['source']}:{e['line']}" if e.get("line") else (e.get("source") or "")
            lines.append(
                f"  {_time(e['ts_ms'])}  {(e.get('error') or '').splitlines()[0][:100] if e.get('error') else ''}  [{where}]"
            )
    lines.append(f"matches    {d['matches']}")
    for m in d.get("match_list", []):
        listed = ", ".join(m["recordings"]) if m["recordings"] else "no recording"
        lines.append(f"  {m['match']}  {m['count']} reports  last {_time(m['last_seen_ms'])}  {listed}")
    recs = d.get("recording_list") or []
    lines.append(f"recordings {len(recs)}")
    for r in recs:
        crash = (
            f"crash {r['crash_callback']} at tick {r['crash_tick']}" if r.get("crash_callback") else "no crash marker"
        )
        lines.append(f"  {r['location']}  {r['integrity']}, {r['ticks']} ticks, {crash}")
    if recs:
        lines.append(
            f"reproduce  nakama-replay reproduce --group {d['group']} --handler HANDLER   (picks {recs[0]['location']})"
        )
    return "\n".join(lines) + "\n"


def format_triage_fixed(g: dict[str, Any]) -> str:
    """``triage fixed``: the group as ``triage groups`` shows it, with its fix mark."""
    return "\n".join(_group_lines(g)) + "\n"


def _time(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _facet(items: list[dict[str, Any]], limit: int = 4) -> str:
    text = ", ".join(f"{i['value']} ({i['count']})" for i in items[:limit])
    return text + (f", +{len(items) - limit} more" if len(items) > limit else "")


def _group_lines(g: dict[str, Any]) -> list[str]:
    lines = [
        f"{g['group']}  {g['side']:<6}  {g['count']:>7} occurrence{'s' if g['count'] != 1 else ' '}"
        f"  first {_time(g.get('first_seen_ms'))}  last {_time(g.get('last_seen_ms'))}",
        f"    {g['title']}",
    ]
    parts = []
    for label, key in _FACETS:
        if g.get(key):
            parts.append(f"{label} {_facet(g[key])}")
    parts.append(f"matches {g['matches']}")
    parts.append(f"recordings {g['recordings']}")
    lines.append("    " + " · ".join(parts))
    if g.get("downstream_of"):
        lines.append(
            "    downstream of server group "
            + ", ".join(f"{d['group']} ({d['count']} of {g['total']} reports)" for d in g["downstream_of"])
        )
    if g.get("client_symptoms"):
        lines.append(
            "    client symptoms: "
            + ", ".join(f"group {d['group']} ({d['count']} reports)" for d in g["client_symptoms"])
        )
    if g.get("fixed_in"):
        mark = f"    fixed in {g['fixed_in']} (marked {_time(g.get('fixed_at_ms'))})"
        if g.get("regressions"):
            mark += f" · REGRESSED: {g['regressions']} occurrences at or after the fix, last {_time(g.get('last_regression_ms'))}"
        lines.append(mark)
    return lines
