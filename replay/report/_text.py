"""The text reports of every command, rendered from result objects in one place.

Each ``format_*`` takes a result (data: ``ReplayResult``, ``MatchDiff``, ``LiveReport``, ``FuzzReport``) and
returns the text the command prints, ending in a newline; nothing here prints or decides a verdict. The CLI
writes these strings, the pytest plugin and the regression checks put them into failure messages.
"""

from __future__ import annotations

from typing import Any

from replay.report._values import short

__all__ = ["format_diff", "format_fuzz", "format_live", "format_regression_failure", "format_reproduce"]

_REASONS = {0: "", 1: "join", 2: "update", 3: "leave", 4: "disconnect"}
_ENDINGS = {"hung": "HUNG", "exited": "EXITED", "killed": "KILLED", "out-of-memory": "OUT OF MEMORY"}
_HEADLINES = {"reproduced": "REPRODUCED", "not-reproduced": "DID NOT REPRODUCE", "incomplete": "INCOMPLETE"}


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


# -- reproduce -----------------------------------------------------------------------------------------------


def format_reproduce(r: Any) -> str:
    """A ``ReplayResult``: how the replay ended, the last inputs, the presences, divergences and the verdict."""
    out = [
        f"recording  {r.recording}",
        f"handler    {r.handler}",
        f"replayed   {r.calls_replayed} calls, {r.ticks_replayed} ticks",
    ]
    death = r.death
    if r.crash is not None:
        c = r.crash
        what = _ENDINGS.get(r.outcome, "HUNG" if c.hung else "CRASHED")
        where = death.where if death is not None else f"in {c.callback} at tick {c.tick}"
        out.append(f"\n{what} {where}: {c.error}")
        if death is not None and death.ended:
            out.append(
                "(the supervisor ended the handler process: presences, logs and divergences before this "
                "point are not known; --in-process shows them where the process survives)"
            )
        if c.traceback:
            out += ["", c.traceback.rstrip()]
    elif r.outcome == "stopped":
        out.append(f"\nstopped: the handler stopped the match ({r.stop_reason})")
    else:
        out.append("\nran to the end")
    if r.last_inputs:
        out.append(f"\ninputs of the last {len({i['tick'] for i in r.last_inputs})} ticks:")
        out += [f"  tick {item['tick']:>5}  {item['callback']}" + _input_detail(item) for item in r.last_inputs]
    if death is not None and death.ended:
        out.append("\npresences at the end: not known (the handler process ended)")
    else:
        out.append(f"\npresences at the end ({len(r.presences)}):")
    out += [f"  {p.username or p.user_id:<16} user {p.user_id}  session {p.session_id}" for p in r.presences]
    if r.divergence_count:
        out.append(f"\n{r.divergence_count} divergences from the recorded outcomes; first ones:")
        out += ["  " + d.describe() for d in r.divergences[:10]]
    if r.after_stop is not None:
        a = r.after_stop
        could = (
            "Nakama made them: the recorded match had not stopped there"
            if a.nakama_could_make
            else "Nakama could not have made them: it never calls a stopped match's handler"
        )
        out.append(f"\nafter stop {a.describe()} were not replayed; {could}")
    if r.recorded_crash is not None:
        rc = r.recorded_crash
        first = rc.error.splitlines()[0] if rc.error else ""
        out.append(f"\nrecorded   crash in {rc.callback} at tick {rc.tick}: {first}")
    if r.integrity is not None and not r.integrity.complete:
        out.append(f"integrity  {r.integrity.describe()}")
    out.append(f"\n{_HEADLINES[r.status]}: {r.verdict}")
    return _text(out)


def _input_detail(item: dict[str, Any]) -> str:
    if "messages" in item:
        if not item["messages"]:
            return "  (no messages)"
        return "".join(
            f"\n               op {m['op_code']:<4} from {m['sender']}: {m['data']}" for m in item["messages"]
        )
    if "presences" in item:
        return "  " + ", ".join(
            f"{p['username']} ({p['session_id']}{', ' + _REASONS.get(p.get('reason', 0), '') if p.get('reason') else ''})"
            for p in item["presences"]
        )
    if "presence" in item:
        return f"  {item['presence']['username']} ({item['presence']['session_id']}) metadata {item.get('metadata')}"
    if "data" in item:
        return f"  data {item['data']!r}"
    if "grace_seconds" in item:
        return f"  grace {item['grace_seconds']} s"
    return ""


def format_regression_failure(run: Any, problems: list[str], source: str = "") -> str:
    """What a failing regression test shows (``replay.regression.RegressionRun``): the expectation, what failed,
    the reproduction summary, the first divergent tick and the state paths that differ from a recorded snapshot."""
    head = [f"expectation  {source}"] if source else []
    head += [f"FAILED: {p}" for p in problems]
    text = "".join(line + "\n" for line in head) + "\n" + format_reproduce(run.result)
    r = run.result
    out = []
    if r.divergences:
        d = r.divergences[0]
        out.append(f"\nfirst divergent tick {d.tick} ({d.callback}, call #{d.index}): {d.field}")
        fields = sorted({x.field for x in r.divergences if x.tick == d.tick})
        out.append(f"  fields differing at that tick: {', '.join(fields)}")
    if run.paths:
        more = f" (first {len(run.paths)} of {run.paths_count})" if run.paths_count > len(run.paths) else ""
        out.append(f"\nstate paths differing from the recorded snapshot at tick {run.paths_tick}{more}:")
        out += [f"  {p.field}: recorded {p.a!r}, replayed {p.b!r}" for p in run.paths]
    return text + (_text(out) if out else "")


# -- diff ----------------------------------------------------------------------------------------------------


def format_diff(r: Any) -> str:
    """A ``MatchDiff``: the two sides, what was compared, the first divergence (or none) and what was not seen."""
    out = [
        f"mode       {r.mode}" + ("" if r.tolerance.exact else f"  (float tolerance {r.tolerance})"),
        f"a          {r.a}",
        f"b          {r.b}",
        f"compared   {r.calls_compared} calls",
    ]
    if r.integrity is not None and not r.integrity.complete:
        out.append(f"integrity  {r.integrity.describe()}")
    out += _diff_finding(r)
    if r.incomplete:
        out.append(f"\nINCOMPLETE: {r.integrity_note}")
    elif r.integrity_note:
        out.append(f"\n({r.integrity_note})")
    return _text(out)


def _diff_finding(r: Any) -> list[str]:
    if r.ended_early is not None:
        out = [f"\n{'not compared to the end' if r.incomplete else 'NOT COMPARED TO THE END'}: {r.note}"]
        if r.ended_early.get("process"):
            out.append("(the supervisor ended that run's handler process)")
        return out
    if not r.diverged:
        what = "no divergence in the intact part" if r.incomplete else "NO DIVERGENCE"
        return [f"\n{what}" + (f": {r.note}" if r.note else "")]
    what = "diverged in the intact part" if r.incomplete else "DIVERGED"
    out = [f"\n{what} at call #{r.index}: {r.callback} at tick {r.tick}"]
    if r.inputs:
        out.append("inputs:")
        out += ["  " + line for line in _diff_inputs(r.inputs)]
    if r.outcomes:
        out.append("outcome fields that differ:")
        out += [f"  {o.field}:\n    a: {short(o.a)}\n    b: {short(o.b)}" for o in r.outcomes]
    st = r.state
    if st is not None and st.count:
        width = min(48, max(len(p.field) for p in st.paths)) if st.paths else 0
        out.append(f"state paths that differ ({st.count}):")
        out += [f"  {p.field:<{width}}  a: {short(p.a, 60):<24}  b: {short(p.b, 60)}" for p in st.paths]
        if st.count > len(st.paths):
            out.append(f"  ... and {st.count - len(st.paths)} more")
    elif st is not None and r.outcomes:
        out.append("state: equal")
    if r.note:
        out.append(f"note: {r.note}")
    return out


def _diff_inputs(inputs: dict[str, Any]) -> list[str]:
    if "messages" in inputs:
        if not inputs["messages"]:
            return ["(no messages)"]
        return [f"op {m['op_code']:<4} from {m['sender']}: {m['data']}" for m in inputs["messages"]]
    if "presences" in inputs:
        return [
            f"{p['username'] or p['user_id']} (user {p['user_id']}, session {p['session_id']})"
            for p in inputs["presences"]
        ]
    if "presence" in inputs:
        p = inputs["presence"]
        return [f"{p['username'] or p['user_id']} (session {p['session_id']}) metadata {inputs.get('metadata')}"]
    rest = {k: v for k, v in inputs.items() if k not in ("callback", "tick")}
    return [f"{k}: {v!r}" for k, v in rest.items()] or ["(none)"]


# -- live ----------------------------------------------------------------------------------------------------


def format_live(r: Any, integrity: Any = None) -> str:
    """A ``LiveReport``: the sessions, the actions sent, how the match ended, tick alignment, the comparison
    and the conclusion; then, for an incomplete recording replayed with --allow-incomplete, what was not."""
    rec = r.recorded_end
    out = [
        f"recording  {r.recording} ({r.kind} recording, {r.tick_rate} Hz)",
        f"nakama     {r.nakama}  match {r.match_id} ({'created' if r.created else 'joined'})",
    ]
    out += [f"captured   {path}" for path in r.wire_paths]
    out.append("\nsessions")
    for s in r.sockets:
        close = s["close"]
        how = (
            ""
            if close is None
            else f"  closed by {close['by']} at tick {close['tick']}: {close['code']} {close['reason']!r}"
        )
        out.append(
            f"  {s['label']:<10} recorded user {s['recorded_user_id'][:8]}  ->  live user "
            f"{(s['live_user_id'] or '-')[:8]} session {(s['live_session_id'] or '-')[:8]}{how}"
        )
    sent = ", ".join(f"{sum(v.values())} {k}" for k, v in r.actions.items())
    out.append(f"\nactions    {sent}" + (f" ({r.late} sent after their window)" if r.late else ""))
    out += [f"  skipped: {line}" for line in r.skipped]
    out += [f"  problem: {line}" for line in r.problems[:10]]
    if len(r.problems) > 10:
        out.append(f"  ... {len(r.problems) - 10} more problems (see --json)")
    out.append("")
    out += _live_ending(r)
    first = rec.error.splitlines()[0] if rec.error else ""
    tick = "" if rec.tick is None else f" at tick {rec.tick}"
    out.append(
        f"recorded   {rec.outcome}{tick}"
        + (f" in {rec.callback}: {first}" if rec.callback else (f": {first}" if first else ""))
    )
    out += _live_alignment(r)
    out += _live_comparison(r)
    out += [f"note: {note}" for note in r.notes]
    out.append("\n" + r.conclusion)
    if integrity is not None and not integrity.complete:
        out.append(f"integrity  {integrity.describe()} (--allow-incomplete: not replayed: {integrity.missing()})")
    return _text(out)


def _live_ending(r: Any) -> list[str]:
    if r.outcome == "crashed":
        where = "at an unknown tick" if r.crash_tick is None else f"at recorded tick {r.crash_tick}"
        live = "" if r.crash_live_tick is None else f" (live tick {r.crash_live_tick}, from the {r.crash_source})"
        out = [f"CRASHED {where}{live}"]
        if r.log_crash is not None:
            first = r.log_crash.error.splitlines()[0] if r.log_crash.error else ""
            out.append(
                f"  server log: Stopping match after error from {r.log_crash.callback} execution, tick {r.log_crash.tick}: {first}"
            )
        return out
    if r.outcome == "unresponsive":
        u = r.unresponsive
        why = []
        if u["expected_broadcasts"]:
            why.append(f"{u['expected_broadcasts']} recorded loop broadcasts to the replayed sessions never came")
        if u["unanswered"]:
            why.append(f"no answer to {'; '.join(u['unanswered'][:3])}")
        out = [
            f"UNRESPONSIVE from tick {u['last_alive_tick']} (the last tick it was seen alive): nothing from the "
            f"match for {u['silent_seconds']:.1f} s; " + "; ".join(why)
        ]
        if u["then_closed_at_tick"] is not None:
            out.append(
                f"  then the server closed every socket (around tick {u['then_closed_at_tick']}): not a crash at "
                "that tick, the match had stopped answering before (a hang guard ending it?)"
            )
        return out
    if r.outcome == "stopped":
        return ["STOPPED: the match is gone, without a crash"]
    if r.outcome == "completed":
        return ["RAN TO THE END: the match still runs after the last action"]
    return ["DID NOT CRASH (no session was left in the match to ask whether it still runs)"]


def _live_alignment(r: Any) -> list[str]:
    c = r.clock
    how = "revealed" if r.drift_revealed else "estimated from send times"
    out = [
        f"\ntick alignment  drift {r.drift} tick(s), {how} ({c['broadcasts_matched_to_ticks']} broadcasts matched to"
        f" recorded ticks, {c['echoes']} echoes); schedule starts at live tick {r.offset}"
    ]
    msgs = r.messages
    if msgs:
        on_time = sum(1 for m in msgs if m.aimed == m.intended)
        out.append(
            f"  {len(msgs)} messages: {on_time} aimed at their recorded tick; "
            f"{sum(1 for m in msgs if m.landed is not None)} landings revealed by an echo"
        )
        off = [m for m in msgs if m.aimed != m.intended or (m.landed is not None and m.landed != m.intended)]
        for m in off[:10]:
            landed = "" if m.landed is None else f", landed {m.landed}"
            out.append(f"    {m.actor:<10} op {m.op_code:<4} meant for tick {m.intended}, aimed {m.aimed}{landed}")
        if len(off) > 10:
            out.append(f"    ... {len(off) - 10} more (see --json)")
    return out


def _live_comparison(r: Any) -> list[str]:
    if not r.compared:
        return []
    if r.compare_scope == "nothing":
        return [
            "\ncompare    nothing to compare: the recording holds no call outcomes, so it does not say what was broadcast"
        ]
    upto = (
        ""
        if r.compare_scope == "all"
        else f" (ticks up to {r.compare_until}: the recording holds no outcomes after it)"
    )
    out = [
        f"\ncompare    {r.matched} of {r.deliveries} recorded match_data deliveries matched, {r.aligned} in op code"
        f" and sender ({r.received} received live){upto}"
    ]
    if r.reordered:
        out.append(
            f"  {r.reordered} ticks' broadcasts arrived in another order than recorded (messages from several"
            " sockets reach the server in an order no client controls)"
        )
    m = r.mismatch
    if m is None:
        out.append("  the server's broadcasts match the recording (op code, data, sender, recipients)")
    else:
        out.append(f"  FIRST MISMATCH at tick {m.tick}, {m.actor}'s match_data #{m.index}: {m.why}")
        if r.mismatches > 1:
            out.append(f"  ({r.mismatches} sessions' streams differ)")
    return out


# -- fuzz ----------------------------------------------------------------------------------------------------


def format_fuzz(r: Any) -> str:
    """A ``FuzzReport``: what was searched, why it stopped, and each distinct failure with its minimal stream."""
    seeds = f"seeds {r.seeds[0]}..{r.seeds[-1]}" if r.seeds else f"seed {r.seed}"
    out = [f"fuzzed   {r.handler} with {r.profile}", f"         {r.examples} matches in {r.seconds:.1f} s, {seeds}"]
    if r.duplicates:
        out.append(f"         {r.duplicates} findings of later seeds repeated an earlier one's failure: merged away")
    if r.profile == "<default profile>":
        out.append(
            "note     no --payloads: messages carry arbitrary JSON values or bytes, so crashes on malformed input\n"
            "         come first; describe your clients with --payloads MODULE to search past them"
        )
    if r.capped:
        out.append(
            f"stopped  at --max-findings {r.max_findings} after {r.examples} of {r.budget} matches: more failures may"
            " remain\n         (raise --max-findings, or fix these and run again: the example database replays them first)"
        )
    if not r.findings:
        out.append("\nno failure found")
        return _text(out)
    n = len(r.findings)
    out.append(f"\n{n} distinct failure{'s' if n != 1 else ''}:")
    for i, f in enumerate(r.findings, 1):
        lines = f.message.splitlines()
        out += [
            f"\n{i}. {f.key}",
            f"   found after {f.examples} matches, {f.seconds:.1f} s",
            f"   {lines[0] if lines else f.kind}",
            f"   minimal stream: {len(f.calls)} calls from {len(f.actions)} client actions:",
        ]
        out += [f"     {a}" for a in f.actions]
        if f.recording is not None:
            out.append(f"   recording    {f.recording}")
        if f.expectation is not None:
            out.append(f"   expectation  {f.expectation}")
        if f.recording is not None and f.is_crash:
            out.append(f"   reproduce:   {f.reproduce_command()}")
        elif f.recording is not None:
            out.append(f"   not a crash: `{f.reproduce_command()}` replays it;")
            out.append(f"   the check fails after {f.callback} at tick {f.tick}")
    return _text(out)
