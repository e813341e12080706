"""Find the first bad version in an ordered list: git bisect's search and its ``run`` verdicts.

A test of one version answers like a ``git bisect run`` script: exit 0 good, 125 skip (cannot tell),
1..127 other than 125 bad, anything else (above 127, or killed by a signal) aborts the bisection. The
first version is taken as good and the last as bad, as ``git bisect start BAD GOOD`` does, unless
``check_ends`` tests them too; then at most ``ceil(log2(n - 1))`` versions are replayed, more when
some are skipped (the next one tried is the untested version nearest the middle).

Versions come from:

- ``git_versions``: a handler file's history, ``REV1..REV2`` (REV1 good, REV2 bad; the commits between
  that change the handler's folder, first parent only). Each revision's folder is written by ``git
  archive`` into a temporary folder, so the handler keeps its file name and finds the siblings it imports;
- ``folder_versions``: one handler file per version in a folder (or one sub-folder per version holding
  the handler under its usual name), ordered by version key (``arena_v2`` before ``arena_v10``) or name;
- ``named_versions``: version strings (client versions) for a ``--run`` command.

``ReplayTest`` is the default test: replay the recording into a version's handler (in a supervised
handler process with ``limits``, so a version that hangs or dies is judged like any other crash and the
search goes on; ``close()`` ends it); bad when the
recording's crash happens again with the same signature (``replay.runtime._signature``), or with
``predicate="diverges"`` when the replay does not reproduce the recorded outcomes. A handler that does not
load is skipped. ``CommandTest`` runs a shell command with ``{version}`` (the commit, file path or version string),
``{recording}`` and ``{handler}`` filled in and judges it by its exit status.

k-ary search (``bisect(..., test_many=..., jobs=k)``): when k versions can be tested at once (``bisect --run``
with ``-j K``: K shell commands side by side, on this machine or on the workers of a Dask cluster), each round
tests the k untested versions nearest the k points that cut the open range into k + 1 equal parts, then keeps
the first bad one and the last good one below it. A range of n versions then takes about ``log(n) / log(k + 1)``
rounds instead of ``log2(n)`` steps (k = 3 halves the rounds of a 1,000-version range: 5 instead of 10), at the
price of about k times as many tests; a round waits for its slowest test. Steps are recorded in version order
within a round, so the result does not depend on which test finished first.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.errors import BisectError, HandlerLoadError

__all__ = [
    "ABORT",
    "BAD",
    "GOOD",
    "SKIP",
    "BisectResult",
    "CommandTest",
    "GitSource",
    "Materialiser",
    "ReplayTest",
    "Step",
    "Version",
    "bisect",
    "kary_bisect",
    "run_shell",
    "folder_versions",
    "git_versions",
    "named_versions",
    "split_handler",
    "verdict_from_exit",
    "version_key",
]

GOOD, BAD, SKIP, ABORT = "good", "bad", "skip", "abort"


def verdict_from_exit(code: int) -> str:
    """``git bisect run``'s reading of an exit status (a negative status is a signal: abort)."""
    if code == 0:
        return GOOD
    if code == 125:
        return SKIP
    if 1 <= code <= 127:
        return BAD
    return ABORT


@dataclass(frozen=True, slots=True)
class Version:
    """One candidate: ``name`` for people, ``ref`` for the machine (commit, file path, version string)."""

    name: str
    ref: str
    handler: str = ""  # the handler file as it stands in place (folder versions); git versions materialise

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "ref": self.ref}


@dataclass(frozen=True, slots=True)
class Step:
    """One test of one version."""

    index: int  # position in the version list
    version: Version
    verdict: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "version": self.version.name,
            "ref": self.version.ref,
            "verdict": self.verdict,
            "why": self.why,
        }


@dataclass(slots=True)
class BisectResult:
    versions: list[Version]
    steps: list[Step] = field(default_factory=list)
    first_bad: Version | None = None
    first_bad_index: int | None = None
    candidates: list[Version] = field(default_factory=list)  # when skipped versions leave several
    message: str = ""
    aborted: bool = False
    reproduce: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "first_bad": None if self.first_bad is None else dict(self.first_bad.to_json(), index=self.first_bad_index),
            "candidates": [v.to_json() for v in self.candidates],
            "steps": [s.to_json() for s in self.steps],
            "replays": len(self.steps),
            "versions": len(self.versions),
            "message": self.message,
            "aborted": self.aborted,
            "reproduce": self.reproduce,
        }


VersionTest = Callable[[Version], tuple[str, str]]


def bisect(
    versions: Sequence[Version],
    test: VersionTest,
    *,
    check_ends: bool = False,
    on_step: Callable[[Step], None] | None = None,
) -> BisectResult:
    """The first bad version, testing as few as git bisect would. ``test(version) -> (verdict, why)``."""
    return kary_bisect(versions, lambda chosen: [test(v) for v in chosen], 1, check_ends=check_ends, on_step=on_step)


TestMany = Callable[[Sequence[Version]], list[tuple[str, str]]]


def kary_points(good: int, bad: int, untested: Sequence[int], k: int) -> list[int]:
    """The up to ``k`` untested indices nearest the points that cut (good, bad) into k + 1 equal parts, sorted."""
    picked: list[int] = []
    left = [i for i in untested if good < i < bad]
    k = min(k, len(left))
    for j in range(1, k + 1):
        target = good + (bad - good) * j / (k + 1)
        pick = min((i for i in left if i not in picked), key=lambda i: (abs(i - target), i))
        picked.append(pick)
    return sorted(picked)


def kary_bisect(
    versions: Sequence[Version],
    test_many: TestMany,
    jobs: int,
    *,
    check_ends: bool = False,
    on_step: Callable[[Step], None] | None = None,
) -> BisectResult:
    """``bisect`` testing up to ``jobs`` versions per round with ``test_many(versions) -> [(verdict, why)]``
    (see the module's docstring). With ``jobs == 1`` it tests what ``bisect`` tests, in the same order."""
    if jobs < 1:
        raise BisectError(f"jobs must be at least 1, got {jobs}")
    if len(versions) < 2:
        raise BisectError(f"bisect needs at least two versions (a good one and a bad one), got {len(versions)}")
    result = BisectResult(list(versions))

    def run(indices: Sequence[int]) -> list[str]:
        answers = test_many([versions[i] for i in indices])
        if len(answers) != len(indices):
            raise BisectError(f"a round of {len(indices)} tests gave {len(answers)} answers")
        for i, (verdict, why) in zip(indices, answers):
            step = Step(i, versions[i], verdict, why)
            result.steps.append(step)
            if on_step is not None:
                on_step(step)
        return [verdict for verdict, _ in answers]

    good, bad = 0, len(versions) - 1
    if check_ends:
        first: str | None = None
        if jobs > 1:  # both ends in one round
            first, last = run([good, bad])
        else:
            last = run([bad])[0]
        if last != BAD:
            result.aborted = last == ABORT
            result.message = f"the last version {versions[bad].name} is {last}, not bad: nothing to bisect"
            return result
        first = first if first is not None else run([good])[0]
        if first == BAD:
            return _found(result, 0, f"the first version {versions[0].name} is already bad")
        if first == ABORT:
            result.aborted = True
            result.message = f"aborted at {versions[0].name}"
            return result
    skipped: set[int] = set()
    while bad - good > 1:
        untested = [i for i in range(good + 1, bad) if i not in skipped]
        if not untested:
            result.candidates = [versions[i] for i in range(good + 1, bad + 1)]
            result.message = (
                f"only skipped versions are left to test: the first bad version could be any of "
                f"{', '.join(v.name for v in result.candidates)}"
            )
            return result
        if jobs == 1:
            middle = (good + bad) // 2
            picks = [min(untested, key=lambda i: (abs(i - middle), i))]
        else:
            picks = kary_points(good, bad, untested, jobs)
        verdicts = run(picks)
        for i, verdict in zip(picks, verdicts):
            if verdict not in (GOOD, BAD, SKIP):
                result.aborted = True
                why = next(s.why for s in reversed(result.steps) if s.index == i)
                result.message = f"aborted at {versions[i].name}: {why}"
                return result
        skipped.update(i for i, v in zip(picks, verdicts) if v == SKIP)
        bad = min((i for i, v in zip(picks, verdicts) if v == BAD), default=bad)
        good = max((i for i, v in zip(picks, verdicts) if v == GOOD and i < bad), default=good)
    return _found(result, bad, f"{versions[bad].name} is the first bad version")


def _found(result: BisectResult, index: int, message: str) -> BisectResult:
    result.first_bad = result.versions[index]
    result.first_bad_index = index
    result.message = message
    return result


# -- version lists ---------------------------------------------------------------------------------------


def version_key(name: str) -> list[Any]:
    """Natural order: digit runs compare as numbers (``v2`` < ``v10``, ``1.9.0`` < ``1.10.0``)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def named_versions(names: Sequence[str]) -> list[Version]:
    return [Version(n, n) for n in names]


def folder_versions(
    folder: str | os.PathLike[str], *, order: str = "version", handler_name: str | None = None
) -> list[Version]:
    """One version per ``.py``/``.lua``/``.js`` file of ``folder``, or per sub-folder holding ``handler_name``
    (a ``.ts`` module is one file of a folder: pass ``handler_name``)."""
    root = Path(folder)
    if not root.is_dir():
        raise BisectError(f"{root}: not a folder of handler versions")
    found: list[Version] = []
    for entry in root.iterdir():
        if entry.is_file() and entry.suffix in (".py", ".lua", ".js"):
            found.append(Version(entry.name, str(entry), str(entry)))
        elif entry.is_dir() and handler_name and (entry / handler_name).is_file():
            found.append(Version(entry.name, str(entry), str(entry / handler_name)))
    if order not in ("version", "name"):
        raise BisectError(f"unknown order {order!r}: use 'version' or 'name'")
    found.sort(key=(lambda v: version_key(v.name)) if order == "version" else (lambda v: v.name))
    if not found:
        what = f"sub-folders holding {handler_name}" if handler_name else "handler files (.py, .lua, .js)"
        raise BisectError(f"{root}: no {what}")
    return found


def _git(repo: Path, *args: str, binary: bool = False) -> Any:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if proc.returncode != 0:
        raise BisectError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout if binary else proc.stdout.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class GitSource:
    """Where a handler's revisions come from: the repository and the file's path inside it."""

    repo: Path  # top level of the work tree
    path: str  # the handler file, relative to ``repo``, POSIX separators

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    def pathspecs(self, version: Version) -> list[str] | None:
        """What to take from ``version``: the handler's whole folder (its siblings and Lua modules), or at the
        top level of the repository its ``.py``, ``.lua``, ``.js`` and ``.ts`` files, named one by one (``git archive`` fails as
        a whole when one of its pathspecs matches nothing, so a glob for a kind of file the revision lacks
        would lose the handler too). None: the handler is not there at that revision."""
        listing = subprocess.run(
            ["git", "-C", str(self.repo), "ls-tree", "-z", version.ref, "--", self.folder or "."],
            capture_output=True,
            check=False,
        )
        if listing.returncode != 0:
            return None
        entries = [e.split("\t", 1) for e in listing.stdout.decode("utf-8", "surrogateescape").split("\0") if "\t" in e]
        if self.folder:
            return [self.folder] if entries else None
        files = [
            name for meta, name in entries if meta.split()[1] == "blob" and name.endswith((".py", ".lua", ".js", ".ts"))
        ]
        return files if self.path in files else None

    def materialise(self, version: Version, into: Path) -> Path | None:
        """Write the handler's folder at ``version`` under ``into``; the handler path, None if absent."""
        into.mkdir(parents=True, exist_ok=True)
        specs = self.pathspecs(version)
        if specs is None:
            return None
        proc = subprocess.run(
            ["git", "-C", str(self.repo), "archive", "--format=tar", version.ref, "--", *specs],
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            return None  # nothing of the folder at that revision
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: refuse links and paths leaving ``into``
                tar.extractall(into, filter="data")
            else:  # git archive of the user's own repository: plain files below the folder
                tar.extractall(into)
        handler = into / self.path
        return handler if handler.is_file() else None

    def checkout_command(self, version: Version) -> tuple[str, str]:
        """A shell command writing ``version``'s handler folder below the temp folder (``$TMPDIR``, else /tmp,
        as when the command is printed), and the handler path it gives."""
        where = os.path.join(tempfile.gettempdir(), f"nkreplay-bisect-{version.ref[:10]}")
        specs = " ".join(shlex.quote(s) for s in self.pathspecs(version) or [self.path])
        command = (
            f"mkdir -p {shlex.quote(where)} && git -C {shlex.quote(str(self.repo))} archive {version.ref[:12]} "
            f"-- {specs} | tar -x -C {shlex.quote(where)}"
        )
        return command, f"{where}/{self.path}"


def git_versions(handler_file: str | os.PathLike[str], revs: str) -> tuple[GitSource, list[Version]]:
    """``REV1..REV2``: REV1 (good) then the first-parent commits after it up to REV2 that change the
    handler's folder, oldest first (the last one is taken as bad)."""
    good, sep, bad = revs.partition("..")
    if not sep or not good or not bad or bad.startswith("."):
        raise BisectError(f"--revs {revs!r}: write REV1..REV2 (REV1 known good, REV2 bad), e.g. v1.3.0..HEAD")
    handler = Path(handler_file).resolve()
    start = handler.parent
    while not start.is_dir():
        start = start.parent
    repo = Path(_git(start, "rev-parse", "--show-toplevel").strip())
    try:
        rel = handler.relative_to(repo.resolve()).as_posix()
    except ValueError:
        raise BisectError(f"{handler_file}: not inside the git work tree {repo}") from None
    source = GitSource(repo, rel)
    good_sha = _git(repo, "rev-parse", "--verify", f"{good}^{{commit}}").strip()
    bad_sha = _git(repo, "rev-parse", "--verify", f"{bad}^{{commit}}").strip()
    spec = [source.folder] if source.folder else ["."]
    listed = _git(repo, "rev-list", "--reverse", "--first-parent", f"{good_sha}..{bad_sha}", "--", *spec).split()
    if not listed:
        raise BisectError(f"no commit in {revs} changes {source.folder or 'the top folder'}: nothing to bisect")
    versions = []
    for sha in [good_sha, *listed]:
        subject = _git(repo, "log", "-1", "--format=%s", sha).strip()
        versions.append(Version(f"{sha[:10]} {subject}"[:72], sha))
    return source, versions


# -- tests -----------------------------------------------------------------------------------------------


class ReplayTest:
    """Replay the recording into each version's handler (see the module docstring for the verdicts)."""

    def __init__(
        self,
        recording: str | os.PathLike[str],
        *,
        predicate: str = "crash",
        options: Any = None,
        handler_for: Callable[[Version], str | None] | None = None,
        limits: Any = None,
    ) -> None:
        from replay.runtime._signature import CrashSignature

        if predicate not in ("crash", "diverges"):
            raise BisectError(f"unknown predicate {predicate!r}: use 'crash' or 'diverges'")
        self.recording = os.fspath(recording)
        self.predicate = predicate
        self.options = options
        self.handler_for = handler_for or (lambda v: v.handler or None)
        self.worker: Any = None  # the supervised handler process (``limits``); None: replays in this process
        if limits is not None:
            from replay.runtime._supervisor import HandlerProcess

            self.worker = HandlerProcess(limits)
        self.reference = CrashSignature.of_recording(self.recording)
        if predicate == "crash" and self.reference is None:
            raise BisectError(
                f"{self.recording}: the recording has no crash marker to look for; use --predicate diverges"
            )
        from recorder.format import open_recording

        with open_recording(self.recording) as rec:
            self.recorded_name = os.path.basename(split_handler(rec.header.handler)) if rec.header.handler else ""

    def __call__(self, version: Version) -> tuple[str, str]:
        from replay.runtime._isolation import reproduce_isolated

        handler = self.handler_for(version)
        if handler is None:
            return SKIP, "no handler file at this version"
        try:
            if self.worker is None:
                result = reproduce_isolated(self.recording, handler, self.options)
            else:
                from replay.runtime._supervisor import reproduce_supervised

                result = reproduce_supervised(self.recording, handler, self.options, process=self.worker)
        except HandlerLoadError as exc:
            return SKIP, f"handler does not load: {exc.problem}"
        if self.predicate == "diverges":
            return self._diverges(result)
        return self._crash(result, os.path.basename(split_handler(handler)))

    def close(self) -> None:
        """End the supervised handler process (if any)."""
        if self.worker is not None:
            self.worker.close()

    def _crash(self, result: Any, handler_name: str) -> tuple[str, str]:
        from replay.runtime._signature import CrashSignature

        assert self.reference is not None
        c = result.crash
        if c is None:
            ended = "stopped" if result.outcome == "stopped" else "ran to the end"
            return GOOD, f"{ended} without the crash ({result.ticks_replayed} ticks)"
        sig = CrashSignature.from_result(result)
        assert sig is not None
        if handler_name and self.recorded_name and handler_name != self.recorded_name:
            # the handler file of this version has another name: it stands for the recorded one
            sig = CrashSignature(
                sig.callback,
                sig.error_type,
                tuple(
                    self.recorded_name + f[len(handler_name) :]
                    if f == handler_name or f.startswith(handler_name + ":")
                    else f
                    for f in sig.frames
                ),
                sig.op_code,
            )
        first = c.error.strip().splitlines()[0] if c.error.strip() else c.error_type
        if sig.same_crash(self.reference):
            return BAD, f"{c.callback} crashed at tick {c.tick}: {first} (signature {sig.key})"
        recorded_tick = result.recorded_crash.tick if result.recorded_crash is not None else None
        if recorded_tick is not None and c.tick <= recorded_tick:
            return SKIP, f"another crash first, in {c.callback} at tick {c.tick}: {first} ({sig.key}); cannot tell"
        return GOOD, f"not this crash: {c.callback} crashed at tick {c.tick}: {first} ({sig.key})"

    def _diverges(self, result: Any) -> tuple[str, str]:
        if result.reproduced:
            return GOOD, result.verdict
        if result.divergences:
            d = result.divergences[0]
            return BAD, f"{result.verdict}; first divergence at tick {d.tick} ({d.callback}): {d.field}"
        return BAD, result.verdict


def split_handler(spec: str) -> str:
    """The file part of a handler spec (``dir/arena.py:Arena`` -> ``dir/arena.py``)."""
    from replay.runtime._handlers import split_spec

    return str(split_spec(spec)[0])


class CommandTest:
    """Run a shell command per version (``git bisect run`` style); ``{version}``, ``{recording}`` and
    ``{handler}`` are replaced by shell-quoted values.

    Where this parts from ``git bisect run``: exit 126 (cannot execute) and 127 (not found) abort the
    bisection instead of counting as bad. Those are the shell's own answers for a command that never ran
    (a typo, a missing build, a script without its execute bit), and taking them for "bad" names a first
    bad version that nothing tested. ``check`` finds most such commands before the first step."""

    def __init__(
        self,
        template: str,
        recording: str,
        handler_for: Callable[[Version], str | None] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.template = template
        self.recording = recording
        self.handler_for = handler_for or (lambda v: v.handler or None)
        self.cwd = cwd

    def command(self, version: Version, handler: str | None = None) -> str:
        values = {"version": version.ref, "recording": self.recording, "handler": handler or ""}
        try:
            return self.template.format_map({k: shlex.quote(v) for k, v in values.items()})
        except (KeyError, IndexError, ValueError) as exc:
            raise BisectError(
                f"--run {self.template!r}: bad placeholder {exc}; use {{version}}, {{recording}}, {{handler}} "
                "(double braces for literal ones)"
            ) from None

    def check(self, version: Version) -> None:
        """Raise ``BisectError`` when the command's program cannot run (not found, not executable), as
        far as that shows without running it: the first word of the command, after variable assignments,
        unless it is shell syntax (a builtin or keyword, which the shell always has)."""
        cmd = self.command(version, "")
        try:
            words = shlex.split(cmd)
        except ValueError as exc:
            raise BisectError(f"--run {self.template!r}: not a valid shell command: {exc}") from None
        while words and _ASSIGNMENT.match(words[0]):
            words.pop(0)
        if not words or not words[0] or words[0] in _SHELL_WORDS:
            return
        program = words[0]
        problem = _not_runnable(program, self.cwd)
        if problem:
            raise BisectError(f"--run {self.template!r}: {program!r} {problem}, so no version could be tested")

    def __call__(self, version: Version) -> tuple[str, str]:
        cmd = self._command_for(version)
        return self._judge(cmd, *run_shell(cmd, self.cwd))

    def many(self, versions: Sequence[Version], executor: Any) -> list[tuple[str, str]]:
        """Test ``versions`` side by side: each command is ``executor.submit(run_shell, cmd, cwd)`` (threads, or
        the workers of a Dask cluster), answers in the order of ``versions``."""
        commands = [self._command_for(v) for v in versions]
        futures = [executor.submit(run_shell, cmd, self.cwd) for cmd in commands]
        answers = []
        for cmd, future in zip(commands, futures):
            try:
                answers.append(self._judge(cmd, *future.result()))
            except Exception as exc:  # the executor's (a Dask worker lost twice, KilledWorker): nothing was tested
                answers.append((ABORT, f"the command {cmd!r} could not be run: {type(exc).__name__}: {exc}"))
        return answers

    def _command_for(self, version: Version) -> str:
        handler = self.handler_for(version) if "{handler}" in self.template else None
        return self.command(version, handler)

    @staticmethod
    def _judge(cmd: str, returncode: int, last_line: str) -> tuple[str, str]:
        said = f": {last_line}" if last_line else ""
        if returncode in (126, 127):  # the shell could not run it: nothing was tested (see the class)
            what = "cannot be executed" if returncode == 126 else "was not found"
            return ABORT, (
                f"exit {returncode}{said}: the command {cmd!r} {what}; a command that did not run "
                "says nothing about the version (git bisect run would count it as bad)"
            )
        return verdict_from_exit(returncode), f"exit {returncode}{said}"


def run_shell(cmd: str, cwd: str | None) -> tuple[int, str]:
    """Run ``cmd`` through the shell in ``cwd``: its exit status and the last line it printed (at most 160
    characters). A module-level function, so that an executor's worker process can run it."""
    proc = subprocess.run(cmd, shell=True, capture_output=True, cwd=cwd, check=False)
    lines = (proc.stdout + proc.stderr).decode("utf-8", errors="replace").strip().splitlines()
    return proc.returncode, lines[-1][:160] if lines else ""


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: shell builtins and keywords a command may start with (the shell runs them itself)
_SHELL_WORDS = frozenset(
    [
        "!",
        "{",
        "(",
        "[",
        "[[",
        ".",
        ":",
        "break",
        "case",
        "cd",
        "command",
        "continue",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "for",
        "if",
        "set",
        "source",
        "test",
        "then",
        "time",
        "true",
        "ulimit",
        "umask",
        "unset",
        "until",
        "while",
    ]
)


def _not_runnable(program: str, cwd: str | None) -> str:
    """Why ``program`` cannot be run from ``cwd`` ("" when it can, as far as the file system tells)."""
    if "/" in program:
        path = Path(cwd or ".") / program
        if not path.exists():
            return "does not exist"
        if path.is_dir() or not os.access(path, os.X_OK):
            return "is not an executable file"
        return ""
    return "" if shutil.which(program) else "is not a command on PATH"


class Materialiser:
    """Gives each git version its own temporary folder (removed by ``close``)."""

    def __init__(self, source: GitSource) -> None:
        self.source = source
        self._tmp = tempfile.TemporaryDirectory(prefix="nkreplay-bisect-")
        self._done: dict[str, Path | None] = {}

    def __call__(self, version: Version) -> str | None:
        if version.ref not in self._done:
            folder = Path(self._tmp.name) / version.ref[:12]
            self._done[version.ref] = self.source.materialise(version, folder)
        found = self._done[version.ref]
        return None if found is None else str(found)

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Materialiser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
