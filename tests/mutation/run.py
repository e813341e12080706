"""Mutation testing of the code verdicts rest on: ``python tests/mutation/run.py`` from the repository root.

mutmut (``pip install -e ".[mutation]"``; configured in pyproject.toml ``[tool.mutmut]``) makes one-line changes
to ``recorder/format/_integrity.py`` (integrity states), ``replay/runtime/_verdict.py`` (reproduced / not / incomplete),
``replay/runtime/_signature.py`` (crash identity, Lua error classes, the crash hash) and ``replay/regression/_bisect.py`` (bisect's
decisions), and runs the tests that reach each change. A mutant no test kills is a rule the suite does not pin.
Every survivor must be listed in ``tests/mutation/equivalent.toml`` with the reason it changes no verdict (an
equivalent mutant, or one in text no verdict depends on); any other survivor fails this script (exit 1), and so
does a listed mutant that no longer survives (the list must stay true). Not part of CI's time: a full run takes
tens of minutes on two cores. ``--max-children N`` is passed to ``mutmut run``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.toml")


def survivors() -> list[str]:
    """Mutant names mutmut reports as survived (or with no test reaching them)."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+): (survived|no tests)", line)
        if m:
            found.append(m.group(1))
    return found


def main(argv: list[str]) -> int:
    children = argv[argv.index("--max-children") + 1] if "--max-children" in argv else "2"
    shutil.rmtree(ROOT / "mutants", ignore_errors=True)  # a fresh run: mutmut keeps old results and test maps
    run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", children], cwd=ROOT, check=False)
    if run.returncode not in (0, 1):
        print(f"mutmut run failed (exit {run.returncode})", file=sys.stderr)
        return 2
    listed = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8")).get("mutant", {})
    alive = survivors()
    unexplained = [m for m in alive if m not in listed]
    stale = [m for m in listed if m not in alive]
    for m in alive:
        print(f"survived  {m}: {listed.get(m, 'NOT EXPLAINED')}")
    for m in stale:
        print(f"stale     {m}: listed as surviving, but a test kills it now (remove it from {EQUIVALENT.name})")
    print(f"{len(alive)} survivors, {len(unexplained)} unexplained, {len(stale)} stale entries")
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
