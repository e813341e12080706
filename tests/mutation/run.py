"""Mutation testing of the code verdicts rest on; the run is the check.

Run it from the repository root (not part of the test suite: a whole run takes tens of minutes on two cores)::

    pip install -e ".[mutation]"                             # mutmut, pinned
    python tests/mutation/run.py                             # every module in SCOPE, exit 0 only when all is accounted for
    python tests/mutation/run.py recorder.format._integrity  # one module (names as in SCOPE)
    python tests/mutation/run.py --max-children 1 replay.regression._bisect
    python tests/mutation/run.py --report                    # judge the last run again without running mutmut

mutmut (configured in pyproject.toml ``[tool.mutmut]``: which files, which tests) makes one-line changes to the
functions in ``SCOPE`` below and runs the tests that reach each one. A mutant that no test fails on ("survived")
is a rule the suite does not pin. Each survivor must be listed in ``tests/mutation/accepted.toml`` under the
reason it may live: ``equivalent`` (the program behaves the same) or ``wording`` (it changes only the wording of
a message no verdict, integrity state, crash identity, signature key or bisect decision depends on). Any other
survivor is a finding: write a test that asserts the real behaviour it breaks (``mutmut show NAME`` prints the
change). The script exits 0 only when every survivor of the modules it ran is listed and no listed entry of those
modules has gone stale (killed now, or renamed because the code moved); it prints both kinds. Exit 1 otherwise,
2 when mutmut itself fails. A mutant that makes the tests hang ("timeout") counts as killed.

mutmut names a mutant ``module.x_function__mutmut_N`` (methods: ``module.xǁClassǁmethod__mutmut_N``); N counts
the mutations within the function, so editing a function renumbers its mutants: rerun and re-triage it.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCEPTED = Path(__file__).with_name("accepted.toml")
REASONS = ("equivalent", "wording")

# module -> the functions mutated in it (mutmut's mangled names, fnmatch patterns). The recording reader decides
# integrity states together with recorder/format/_integrity.py; the rest of _nkrec.py (writer, event decoding) is not in scope.
SCOPE: dict[str, tuple[str, ...]] = {
    "recorder.format._integrity": ("*",),
    "recorder.format._nkrec": (
        "xǁRecordingǁ_open",
        "xǁRecordingǁ_require_complete",
        "xǁRecordingǁ_read_v2",
        "xǁRecordingǁ_read_v1",
        "xǁRecordingǁ_resync",
        "xǁRecordingǁ_frames",
        "xǁRecordingǁ_new_walk",
        "xǁRecordingǁ_payloads",
        "xǁRecordingǁintegrity",
        "xǁRecordingǁ_check_last_tick",
        "x_incomplete_error",
        "x__v1_count",
    ),
    "replay.runtime._verdict": ("*",),
    "replay.runtime._signature": ("*",),
    # bisect's decisions: exit code -> verdict, the search (one at a time or k per round: which versions a round
    # tests, how its answers move the range), what a replay or a --run command says of a version (run alone or
    # side by side on an executor), the runnable check and which files a revision holds; not its formatting, git
    # plumbing or temp folders
    "replay.regression._bisect": (
        "x_verdict_from_exit",
        "x_bisect",
        "x_kary_bisect",
        "x_kary_points",
        "x__found",
        "xǁReplayTestǁ__call__",
        "xǁReplayTestǁ_crash",
        "xǁReplayTestǁ_diverges",
        "xǁCommandTestǁcheck",
        "xǁCommandTestǁ__call__",
        "xǁCommandTestǁmany",
        "xǁCommandTestǁ_command_for",
        "xǁCommandTestǁ_judge",
        "x_run_shell",
        "x__not_runnable",
        "xǁGitSourceǁpathspecs",
    ),
}
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def patterns(modules: list[str]) -> list[str]:
    return [f"{m}.{fn}__mutmut_*" if fn != "*" else f"{m}.*" for m in modules for fn in SCOPE[m]]


def in_scope(name: str, pats: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in pats)


def results(pats: list[str]) -> dict[str, str]:
    """Mutant name -> mutmut's status, for the mutants in ``pats``."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+): (.+)$", line)
        if m and in_scope(m.group(1), pats):
            found[m.group(1)] = m.group(2).strip()
    return found


def load_accepted() -> dict[str, tuple[str, str]]:
    """Mutant name -> (reason class, reason), from accepted.toml."""
    data = tomllib.loads(ACCEPTED.read_text(encoding="utf-8"))
    unknown = set(data) - set(REASONS)
    if unknown:
        raise SystemExit(f"{ACCEPTED.name}: unknown reason class(es) {sorted(unknown)}; use {', '.join(REASONS)}")
    accepted: dict[str, tuple[str, str]] = {}
    for kind in REASONS:
        for name, reason in data.get(kind, {}).items():
            if name in accepted:
                raise SystemExit(f"{ACCEPTED.name}: {name} is listed twice")
            accepted[name] = (kind, reason)
    return accepted


def module_of(name: str) -> str:
    return next((m for m in SCOPE if name.startswith(m + ".")), "?")


def judge(modules: list[str]) -> int:
    pats = patterns(modules)
    status = results(pats)
    if not status:
        print("no mutant results for " + ", ".join(modules) + " (run without --report first)", file=sys.stderr)
        return 2
    accepted = {k: v for k, v in load_accepted().items() if in_scope(k, pats)}
    alive = sorted(n for n, s in status.items() if s not in KILLED)
    unexplained = [n for n in alive if n not in accepted]
    stale = sorted(n for n in accepted if n not in alive)
    for n in unexplained:
        print(f"NOT ACCEPTED  {n} ({status[n]}): see `python -m mutmut show {n}`")
    for n in stale:
        why = "a test kills it now" if n in status else "no such mutant (the code changed: re-triage)"
        print(f"STALE         {n}: listed in {ACCEPTED.name}, but {why}")
    print(f"\n{'module':22} {'mutants':>8} {'killed':>7} {'equivalent':>11} {'wording':>8} {'left':>5}")
    for m in modules:
        mine = [n for n in status if module_of(n) == m]
        kinds = Counter(accepted[n][0] for n in alive if n in accepted and module_of(n) == m)
        left = sum(1 for n in unexplained if module_of(n) == m)
        killed = sum(1 for n in mine if status[n] in KILLED)
        print(f"{m:22} {len(mine):8} {killed:7} {kinds['equivalent']:11} {kinds['wording']:8} {left:5}")
    other = Counter(status[n] for n in unexplained)
    if other:
        print("not accepted by status: " + ", ".join(f"{k} {v}" for k, v in sorted(other.items())))
    return 1 if unexplained or stale else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"default: all of {', '.join(SCOPE)}")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutmut workers (default 2)")
    parser.add_argument("--report", action="store_true", help="judge the last run's results, run nothing")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep mutants/ from the last run (faster: no new test-to-function map; only while "
        "iterating on one module, never for the final check)",
    )
    args = parser.parse_args(argv)
    modules = args.modules or list(SCOPE)
    bad = [m for m in modules if m not in SCOPE]
    if bad:
        parser.error(f"unknown module(s) {', '.join(bad)}; choose from {', '.join(SCOPE)}")
    if not args.report:
        if not args.reuse:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)  # a fresh run: mutmut keeps old results and maps
        run = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *patterns(modules)],
            cwd=ROOT,
            check=False,
        )
        if run.returncode != 0:
            print(f"mutmut run failed (exit {run.returncode})", file=sys.stderr)
            return 2
    return judge(modules)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
