"""The Lua capture module's cost in a real Nakama: the nakama process's CPU time per match tick, per mode,
wrapped against unwrapped.

Opt-in, like the live tests: it needs a Nakama binary and a PostgreSQL database for it, and skips (saying
so) without them:

    NAKAMA_BIN=/path/to/nakama NAKAMA_DATABASE=postgres:@127.0.0.1:5432/nk_bench \\
        python benchmarks/bench_capture_nakama.py [--port 7350] [--rounds 3] [--seconds 20]

``NAKAMA_DATABASE`` is Nakama's ``database.address`` (``user:password@host:port/dbname``; the database is
created and migrated with ``nakama migrate up``). The servers listen on 127.0.0.1 only: ``--port`` (HTTP and
WebSocket) and the ports Nakama derives from it (PORT-2 .. PORT+1), which must be free.

Two designs (``--design``):

- ``paired`` (the default): each wrapped mode runs at the same time as an unwrapped server of its own
  (the second server on PORT+10, its database named as ``NAKAMA_DATABASE``'s with ``_b`` appended), both
  measured over the same seconds, each server's clients in a process of their own. The ratio of one round
  compares two processes that saw the same load, so the machine's load drift (the unwrapped baseline moved
  from 19 to 36 µs between sequential runs on a shared machine) cancels out of it. The two servers swap
  ports and databases every round, and which of the two is started first every second round (the server
  started first had its matches ticking longer and measured differently), so a multiple of 4 rounds gives
  every mode each port and each start order equally often. Printed per mode: every round's ratio, the
  median (judged against the target), the best and the spread (lowest-highest).
- ``sequential``: one server at a time, the modes taking turns, the best run of each (the ratio of the
  medians beside it): what the first measurements used.

For each configuration it writes a fresh modules folder and config (a temporary folder, removed at the end),
starts Nakama, creates the matches through an RPC (``benchmarks/capture/bench_rpcs.lua``), drives clients,
waits ``--warmup`` seconds, then reads the process's CPU time (user + system, ``/proc/PID/stat``) and the log
file's size over ``--seconds`` seconds, and stops the server. CPU per tick = CPU time / (matches x tick rate x
seconds). The cases are issue 19's:

- idle: 300 matches at 10 Hz without players (``move_match.lua`` only returns its state);
- loaded: 25 matches of 4 players at 10 Hz, each player (a WebSocket client here, reading every broadcast)
  sending one move per tick period; the match broadcasts the positions every tick.

``--compare-module PATH`` (repeatable) adds the lean mode of another ``nkreplay_capture.lua`` (main's, say; with
the ``nkreplay_capture_rec.lua`` beside it, if there is one) to the same rounds, as the mode ``lean @NAME``
(NAME: the file's folder): on a shared machine only figures from one run compare. A compared module is used
exactly as the capture module (``require("nkreplay_capture").wrap(M, options)`` in lean mode), so a control
module (a pass-through wrapper, say) measures what that much work costs in the server. The mode ``A/A`` (in
``--modes``) is the control: an unwrapped server beside an unwrapped server, measured and printed like a wrapped
mode; its ratios show how far the design itself moves a ratio that should be 1.00. Modes as in
``bench_capture.py``: unwrapped, full, lean, lean+outcomes, lean with a 5 s flush, lean with ``sample = 0``.
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_capture import MODES, TARGETS, module_name, move, write_modules

SERVER_KEY, HTTP_KEY = "defaultkey", "defaulthttpkey"
CONSOLE_USER, CONSOLE_PASSWORD = "admin", "adminpassword1"  # the console's (its pprof endpoints: --pprof)
#: the lean mode with another version of the capture module (--compare-module, "lean @" + its folder's name),
#: measured in the same run
COMPARED = "lean @"
#: the control: an unwrapped server measured as if it were a wrapped mode (paired beside an unwrapped one)
CONTROL = "A/A"
CASES = {"idle": (300, 0), "loaded": (25, 4)}  # matches, players per match
TICK_RATE = 10


@dataclass
class Run:
    case: str
    mode: str
    matches: int
    players: int
    seconds: float
    cpu_seconds: float
    log_bytes: int
    log_lines: int
    moves: int = 0  # moves the server's clients sent during the window (loaded)

    @property
    def us_per_tick(self) -> float:
        return 1e6 * self.cpu_seconds / (self.matches * TICK_RATE * self.seconds)

    @property
    def moves_per_tick(self) -> float:
        """Moves sent per match tick in the window (the players per match when the clients kept up): CPU per
        tick is only comparable between servers that were sent the same load."""
        return self.moves / (self.matches * TICK_RATE * self.seconds)

    @property
    def log_bytes_per_tick(self) -> float:
        return self.log_bytes / (self.matches * TICK_RATE * self.seconds)


# -- the server ----------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Nakama:
    """One Nakama process on 127.0.0.1 with its own config, data folder and log file under ``folder``."""

    def __init__(self, binary: str, database: str, folder: Path, modules: Path, port: int) -> None:
        self.binary, self.database, self.folder, self.modules, self.port = binary, database, folder, modules, port
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "nakama.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.role = ""  # the mode it runs (names its pprof files)
        self.profile_folder: Path | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def migrate(self) -> None:
        subprocess.run(
            [self.binary, "migrate", "up", "--database.address", self.database],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self) -> None:
        busy = [p for p in range(self.port - 2, self.port + 2) if not port_free(p)]
        if busy:
            raise SystemExit(f"port(s) {busy} are taken: choose another --port (Nakama uses PORT-2 .. PORT+1)")
        if self.log.exists():
            self.log.unlink()
        data = self.folder / "data"
        shutil.rmtree(data, ignore_errors=True)
        config = self.folder / "nakama.yml"
        config.write_text(
            "name: nkbench\n"
            f"data_dir: {data}\n"
            f"logger: {{level: info, stdout: false, file: {self.log}, format: json}}\n"
            f'database: {{address: ["{self.database}"]}}\n'
            f"runtime: {{path: {self.modules}, http_key: {HTTP_KEY}}}\n"
            f"socket: {{address: 127.0.0.1, port: {self.port}, server_key: {SERVER_KEY}}}\n"
            f"console: {{address: 127.0.0.1, port: {self.port + 1}, username: {CONSOLE_USER},"
            f" password: {CONSOLE_PASSWORD}}}\n"
            "session: {encryption_key: capturebenchencryptionkey, refresh_encryption_key: capturebenchrefreshkey}\n"
        )
        out = open(self.folder / "nakama.stdout", "wb")
        self.proc = subprocess.Popen([self.binary, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.folder / "nakama.stdout").read_text(errors="replace")[-2000:]
                raise SystemExit(f"nakama exited with {self.proc.returncode} while starting:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthcheck", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("nakama did not answer /healthcheck within 60 s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def cpu_profile(self, seconds: float, name: str) -> None:
        """Nakama's Go CPU profile over the next ``seconds`` (its console serves net/http/pprof behind the
        console's basic auth: server/console.go) into ``profile_folder/name.pb.gz``; a failure is printed."""
        assert self.profile_folder is not None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port + 1}/debug/pprof/profile?seconds={max(1, round(seconds))}",
            headers={
                "Authorization": "Basic " + base64.b64encode(f"{CONSOLE_USER}:{CONSOLE_PASSWORD}".encode()).decode()
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=seconds + 60) as r:
                (self.profile_folder / f"{name}.pb.gz").write_bytes(r.read())
        except OSError as e:
            print(f"  pprof of {self.url} failed: {e}", file=sys.stderr)

    def rpc(self, rpc_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.url}/v2/rpc/{rpc_id}?http_key={HTTP_KEY}&unwrap",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def authenticate(self, device: str, username: str) -> str:
        req = urllib.request.Request(
            f"{self.url}/v2/account/authenticate/device?create=true&username={username}",
            data=json.dumps({"id": device}).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": "Basic " + base64.b64encode(f"{SERVER_KEY}:".encode()).decode(),
            },
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return str(json.loads(r.read())["token"])


# -- clients -------------------------------------------------------------------------------------------------


async def play(
    url: str, tokens: list[tuple[str, str]], stop: asyncio.Event, joined: asyncio.Event, counter: Any = None
) -> int:
    """Every (token, match id) a client: join, then one move per tick period until ``stop``, reading every
    message. Returns how many moves were sent (also counted in ``counter``, a shared integer, as they go)."""
    from websockets.asyncio.client import connect

    ws_url = url.replace("http", "ws", 1) + "/ws?format=json&token="
    ready = 0
    sent = 0

    async def client(i: int, token: str, match_id: str) -> None:
        nonlocal ready, sent
        async with connect(ws_url + token, max_size=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"cid": "j", "match_join": {"match_id": match_id}}))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("cid") == "j":
                    if "error" in reply:
                        raise SystemExit(f"join failed: {reply['error']}")
                    break
            ready += 1
            if ready == len(tokens):
                joined.set()

            async def drain() -> None:
                async for _ in ws:
                    pass

            reader = asyncio.create_task(drain())
            await joined.wait()
            tick, period = 0, 1 / TICK_RATE
            next_at = time.monotonic() + (i % 10) * period / 10
            while not stop.is_set():
                data = base64.b64encode(move(tick, i).encode()).decode()
                await ws.send(json.dumps({"match_data_send": {"match_id": match_id, "op_code": 1, "data": data}}))
                sent += 1
                if counter is not None:
                    counter.value += 1
                tick += 1
                next_at += period
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            reader.cancel()

    await asyncio.gather(*(client(i, t, m) for i, (t, m) in enumerate(tokens)))
    return sent


def client_process(url: str, tokens: list[tuple[str, str]], joined: Any, stop: Any, counter: Any = None) -> None:
    """``play`` in a process of its own (paired runs: each server's clients get their own interpreter, so
    neither server's clients wait on the other's); ``joined``/``stop`` are multiprocessing events."""

    async def run() -> None:
        stop_now, all_joined = asyncio.Event(), asyncio.Event()
        clients = asyncio.create_task(play(url, tokens, stop_now, all_joined, counter))
        await asyncio.wait_for(all_joined.wait(), timeout=120)
        joined.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        stop_now.set()
        await asyncio.wait_for(clients, timeout=30)

    asyncio.run(run())


# -- one configuration ---------------------------------------------------------------------------------------


def prepare_modules(folder: Path, mode: str, compared: dict[str, Path] | None = None) -> None:
    """Only what the mode's matches run: Nakama loads every module in the folder at startup, and the capture
    module patches nk, math and os in the VM that loads it (the unwrapped run must not pay for that)."""
    shutil.rmtree(folder, ignore_errors=True)
    if mode == CONTROL:
        mode = "unwrapped"
    if mode.startswith(COMPARED):
        assert compared is not None
        module = compared[mode]
        write_modules(folder, with_capture=False)
        for path in folder.glob("*.lua"):
            if path.name not in ("move_match.lua", module_name("lean") + ".lua"):
                path.unlink()
        shutil.copy(module, folder / "nkreplay_capture.lua")
        rec = module.with_name("nkreplay_capture_rec.lua")  # its recording side, if it has one
        if rec.is_file():
            shutil.copy(rec, folder / rec.name)
        shutil.copy(HERE / "capture" / "bench_rpcs.lua", folder / "bench_rpcs.lua")
        return
    paths = write_modules(folder, with_capture=MODES[mode] is not None)
    for other, path in paths.items():
        if other != mode and path.name != "move_match.lua":
            path.unlink()
    shutil.copy(HERE / "capture" / "bench_rpcs.lua", folder / "bench_rpcs.lua")


def start_matches(nakama: Nakama, case: str, mode: str, compared: dict[str, Path] | None) -> list[tuple[str, str]]:
    """Start the server with the mode's modules and the case's matches; returns the clients' (token, match
    id) pairs (none in the idle case)."""
    matches, players = CASES[case]
    prepare_modules(nakama.modules, mode, compared)
    nakama.start()
    ids = nakama.rpc(
        "bench_capture_create",
        {
            "module": module_name("lean" if mode.startswith(COMPARED) else {CONTROL: "unwrapped"}.get(mode, mode)),
            "count": matches,
            "tick_rate": TICK_RATE,
        },
    )["match_ids"]
    if len(ids) != matches:
        raise SystemExit(f"asked for {matches} matches, got {len(ids)}")
    return [
        (nakama.authenticate(f"capture-bench-{case}-{m:03d}-{p}", f"b{m:03d}p{p}"), ids[m])
        for m in range(matches)
        for p in range(players)
    ]


def window(
    servers: list[tuple[Nakama, str, str]],
    warmup: float,
    seconds: float,
    counters: list[Any] | None = None,
    pprof: tuple[Path, str] | None = None,
) -> list[Run]:
    """After ``warmup`` seconds, every server's CPU time, log growth and moves received (``counters``: each
    server's shared move count, or None) over the same ``seconds`` (``servers``: (server, case, mode) each).
    ``pprof``: (folder, name prefix) to also write every server's Go CPU profile over the window there."""
    counters = counters or [None] * len(servers)

    def moves(counter: Any) -> int:
        return 0 if counter is None else int(counter.value)

    time.sleep(warmup)
    profilers = []
    if pprof is not None:  # Go CPU profiles of every server over the window, from its console's pprof
        for nakama, _, _ in servers:
            thread = threading.Thread(target=nakama.cpu_profile, args=(seconds, pprof[1] + f"-{nakama.role}"))
            thread.start()
            profilers.append(thread)
    before = [(cpu_seconds(n.pid), n.log.stat().st_size, moves(c)) for (n, _, _), c in zip(servers, counters)]
    t0 = time.monotonic()
    time.sleep(seconds)
    after = [(cpu_seconds(n.pid), n.log.stat().st_size, moves(c)) for (n, _, _), c in zip(servers, counters)]
    elapsed = time.monotonic() - t0
    for thread in profilers:
        thread.join(timeout=60)
    runs = []
    for (nakama, case, mode), (cpu0, size0, moves0), (cpu1, size1, moves1) in zip(servers, before, after, strict=True):
        with open(nakama.log, "rb") as f:
            f.seek(size0)
            lines = f.read(size1 - size0).count(b"\n")
        matches, players = CASES[case]
        runs.append(Run(case, mode, matches, players, elapsed, cpu1 - cpu0, size1 - size0, lines, moves1 - moves0))
    return runs


def measure(
    configs: list[tuple[Nakama, str]],
    case: str,
    warmup: float,
    seconds: float,
    compared: dict[str, Path] | None,
    pprof: tuple[Path, str] | None = None,
) -> list[Run]:
    """Run ``case`` on every (server, mode) of ``configs`` at the same time (one of them: the sequential
    design) and measure them over the same window; every server is stopped before this returns."""
    procs: list[Any] = []
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    try:
        joined, counters = [], []
        for nakama, mode in configs:
            tokens = start_matches(nakama, case, mode, compared)
            counters.append(ctx.Value("q", 0, lock=False) if tokens else None)
            if tokens:
                event = ctx.Event()
                proc = ctx.Process(
                    target=client_process, args=(nakama.url, tokens, event, stop, counters[-1]), daemon=True
                )
                proc.start()
                procs.append(proc)
                joined.append(event)
        for event in joined:
            if not event.wait(timeout=180):
                raise SystemExit("the clients did not all join their matches within 180 s")
        for nakama, mode in configs:
            nakama.role = "unwrapped" if mode == "unwrapped" else mode.replace("/", "").replace(" ", "_")
        return window([(n, case, mode) for n, mode in configs], warmup, seconds, counters, pprof)
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=40)
            if proc.is_alive():
                proc.kill()
        for nakama, _ in configs:
            nakama.stop()


# -- the report ----------------------------------------------------------------------------------------------


def report_sequential(runs: list[Run], cases: list[str], modes: list[str], rounds: int) -> None:
    for case in cases:
        matches, players = CASES[case]
        best = {m: min((r for r in runs if r.case == case and r.mode == m), key=lambda r: r.us_per_tick) for m in modes}
        base = best["unwrapped"].us_per_tick
        who = "no players" if not players else f"{players} players each, one move per tick"
        print(f"{case}: {matches} matches at {TICK_RATE} Hz, {who}; nakama CPU per match tick, best of {rounds}:")
        for mode, run in best.items():
            every = ", ".join(f"{r.us_per_tick:.1f}" for r in runs if r.case == case and r.mode == mode)
            median = statistics.median(r.us_per_tick for r in runs if r.case == case and r.mode == mode)
            base_median = statistics.median(r.us_per_tick for r in runs if r.case == case and r.mode == "unwrapped")
            ratio = run.us_per_tick / base
            mark = ""
            if mode == "lean" or mode.startswith(COMPARED):
                mark = f"  target <= {TARGETS[case]:.2f}x: {'met' if ratio <= TARGETS[case] else 'MISSED'}"
            print(
                f"  {mode:<15} {run.us_per_tick:7.1f} us/tick  {ratio:5.2f}x  "
                f"{run.log_bytes_per_tick:6.1f} log bytes/tick  (median {median / base_median:4.2f}x; runs: {every}){mark}"
            )


def report_paired(pairs: list[tuple[Run, Run]], cases: list[str], modes: list[str], rounds: int) -> None:
    """Per mode: the ratio wrapped/unwrapped of every round (both measured over the same window), best and
    median; the targets are judged on the median."""
    for case in cases:
        matches, players = CASES[case]
        who = "no players" if not players else f"{players} players each, one move per tick"
        print(
            f"{case}: {matches} matches at {TICK_RATE} Hz, {who}; nakama CPU per match tick, paired (the unwrapped"
            f" and the wrapped server over the same seconds), {rounds} round(s):"
        )
        for mode in modes:
            if mode == "unwrapped":
                continue
            mine = [(u, w) for u, w in pairs if w.case == case and w.mode == mode]
            ratios = [w.us_per_tick / u.us_per_tick for u, w in mine]
            median = statistics.median(ratios)
            base = statistics.median(u.us_per_tick for u, _ in mine)
            wrapped = statistics.median(w.us_per_tick for _, w in mine)
            log = statistics.median(w.log_bytes_per_tick for _, w in mine)
            sent = ""
            if players:
                sent = (
                    f"; moves/tick median {statistics.median(w.moves_per_tick for _, w in mine):.2f}"
                    f" (unwrapped {statistics.median(u.moves_per_tick for u, _ in mine):.2f})"
                )
            mark = ""
            if mode == "lean" or mode.startswith(COMPARED):
                mark = f"  target <= {TARGETS[case]:.2f}x: {'met' if median <= TARGETS[case] else 'MISSED'} (median)"
            every = ", ".join(f"{r:.2f}" for r in ratios)
            print(
                f"  {mode:<15} median {median:4.2f}x  best {min(ratios):4.2f}x  spread {min(ratios):4.2f}-"
                f"{max(ratios):4.2f}x  (rounds: {every}); median"
                f" {wrapped:6.1f} us/tick against {base:6.1f} unwrapped; {log:6.1f} log bytes/tick{sent}{mark}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--port",
        type=int,
        default=7350,
        help="HTTP/WebSocket port on 127.0.0.1 (uses PORT-2..PORT+1; paired runs also PORT+8..PORT+11)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="runs of every configuration")
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring window per run")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after the matches start, before measuring")
    ap.add_argument("--cases", default="idle,loaded", help="comma-separated: idle, loaded")
    ap.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated modes (unwrapped is always run); {CONTROL}: unwrapped beside unwrapped, the control",
    )
    ap.add_argument(
        "--design",
        choices=("paired", "sequential"),
        default="paired",
        help="paired: every wrapped mode runs beside its own unwrapped server, both measured over the same"
        " seconds (the machine's load cancels out of the ratio); sequential: one server at a time, the modes"
        " taking turns, best of the rounds",
    )
    ap.add_argument(
        "--pprof",
        type=Path,
        help="write every server's Go CPU profile over every measuring window into this folder"
        " (CASE-rROUND-MODE-SERVER.pb.gz; read with `go tool pprof`)",
    )
    ap.add_argument("--json", action="store_true", help="print every run as one JSON document at the end")
    ap.add_argument(
        "--compare-module",
        type=Path,
        action="append",
        default=[],
        help="another nkreplay_capture.lua (e.g. main's, or a control module): its lean mode is measured too, in"
        " the same rounds, as the mode 'lean @FOLDER' (FOLDER: the file's folder name); repeatable",
    )
    args = ap.parse_args()
    binary, database = os.environ.get("NAKAMA_BIN", ""), os.environ.get("NAKAMA_DATABASE", "")
    if not (binary and database):
        print("skipped: set NAKAMA_BIN (a nakama binary) and NAKAMA_DATABASE (its database.address) to run this")
        return
    if not Path("/proc/self/stat").exists():
        raise SystemExit("needs Linux /proc to read the server's CPU time")
    modes = ["unwrapped"] + [m for m in args.modes.split(",") if m and m != "unwrapped"]
    unknown = [m for m in modes if m not in MODES and m != CONTROL]
    compared: dict[str, Path] = {}
    for path in args.compare_module:
        if not path.is_file():
            raise SystemExit(f"--compare-module {path}: no such file")
        name = COMPARED + path.resolve().parent.name
        if name in compared:
            raise SystemExit(
                f"--compare-module {path}: another compared module is in a folder named the same ({name!r})"
            )
        compared[name] = path
        modes.append(name)
    if unknown:
        raise SystemExit(f"unknown mode(s) {unknown}; known: {list(MODES)}")
    if args.design == "paired" and len(modes) < 2:
        raise SystemExit("--design paired needs at least one wrapped mode in --modes")
    cases = [c for c in args.cases.split(",") if c]

    def profiles(name: str) -> tuple[Path, str] | None:
        return None if args.pprof is None else (args.pprof, name)

    runs: list[Run] = []
    pairs: list[tuple[Run, Run]] = []
    with tempfile.TemporaryDirectory(prefix="nkbench-") as tmp:
        folder = Path(tmp)
        first = Nakama(binary, database, folder / "a", folder / "a" / "modules", args.port)
        first.migrate()
        servers = [first]
        if args.design == "paired":
            # a second server beside the first: 10 ports up, a database of its own (same name + "_b")
            address, _, query = database.partition("?")
            other = address + "_b" + ("?" + query if query else "")
            second = Nakama(binary, other, folder / "b", folder / "b" / "modules", args.port + 10)
            second.migrate()
            servers.append(second)
        if args.pprof is not None:
            args.pprof.mkdir(parents=True, exist_ok=True)
            for server in servers:
                server.profile_folder = args.pprof
        for case in cases:
            for r in range(args.rounds):
                if args.design == "sequential":
                    for mode in modes:
                        name = profiles(f"{case}-r{r + 1}-seq")
                        (run,) = measure([(first, mode)], case, args.warmup, args.seconds, compared, name)
                        runs.append(run)
                        print(
                            f"  [{case} round {r + 1}] {mode:<15} {run.us_per_tick:7.1f} us/tick  "
                            f"{run.log_bytes_per_tick:6.1f} log bytes/tick",
                            file=sys.stderr,
                            flush=True,
                        )
                    continue
                for mode in modes[1:]:
                    # the servers swap roles every round and the start order every second round, so over 4
                    # rounds neither port, database nor start order favours one side
                    plain, wrapped = servers if r % 2 == 0 else servers[::-1]
                    configs = [(plain, "unwrapped"), (wrapped, mode)]
                    name = profiles(f"{case}-r{r + 1}-{mode.replace('/', '').replace(' ', '_')}")
                    if (r // 2) % 2 == 1:
                        base, run = measure(configs[::-1], case, args.warmup, args.seconds, compared, name)[::-1]
                    else:
                        base, run = measure(configs, case, args.warmup, args.seconds, compared, name)
                    runs += [base, run]
                    pairs.append((base, run))
                    print(
                        f"  [{case} round {r + 1}] {mode:<15} {run.us_per_tick:7.1f} us/tick against unwrapped "
                        f"{base.us_per_tick:7.1f}: {run.us_per_tick / base.us_per_tick:5.2f}x  "
                        f"{run.log_bytes_per_tick:6.1f} log bytes/tick"
                        + (
                            f"  moves/tick {run.moves_per_tick:.2f} (unwrapped {base.moves_per_tick:.2f})"
                            if run.players
                            else ""
                        ),
                        file=sys.stderr,
                        flush=True,
                    )
    if args.design == "paired":
        report_paired(pairs, cases, modes, args.rounds)
    else:
        report_sequential(runs, cases, modes, args.rounds)
    if args.json:
        print(json.dumps([{**asdict(r), "us_per_tick": r.us_per_tick} for r in runs]))


if __name__ == "__main__":
    main()
