"""What running handlers in LuaJIT (lupa.luajit21) must not change: a handler sees gopher-lua's library set and
none of LuaJIT's own (ffi above all), the hang guard stops loops the JIT compiler would take, and nothing a
handler observes depends on LuaJIT's string hash, which is seeded at random for every Lua state."""

from __future__ import annotations

import locale
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recorder.format import InitCall, SignalCall, canonical_bytes
from replay.lua import LuaHandler
from replay.runtime import CrashSignature, MatchRuntime
from tests.common.paths import ROOT
from tests.lua.test_handler import HEADER, module

# LuaJIT's extensions; gopher-lua has none of them
_LUAJIT_MODULES = (
    "ffi",
    "jit",
    "jit.opt",
    "jit.util",
    "jit.profile",
    "bit",
    "string.buffer",
    "table.new",
    "table.clear",
)


def _signal(path: Path | str, data: str = "", pairs_order: str = "native") -> str:
    rt = MatchRuntime(LuaHandler(path, pairs_order=pairs_order), HEADER)
    try:
        rt.apply(InitCall({}))
        step = rt.apply(SignalCall(0, data))
    finally:
        rt.close()
    assert step.crash is None, step.crash
    return step.outcome.reply


def test_a_handler_reaches_none_of_luajits_own_libraries(tmp_path: Path) -> None:
    names = ", ".join(f'"{m}"' for m in _LUAJIT_MODULES)
    path = module(
        tmp_path,
        signal=textwrap.dedent(f"""
        local found = {{}}
        local function note(what, v) if v ~= nil then found[#found + 1] = what end end
        local cdata = loadstring("return 1LL") -- LuaJIT's lexer opens ffi for a cdata literal
        note("cdata literal", cdata == nil and "no cdata" or nil)
        for _, name in ipairs({{ {names} }}) do
          note("loaded " .. name, package.loaded[name])
          note("preload " .. name, package.preload[name])
          local ok = pcall(require, name)
          note("require " .. name, ok or nil)
          for i, loader in ipairs(package.loaders) do
            note("loader " .. i .. " " .. name, type(loader(name)) == "function" or nil)
          end
        end
        for _, g in ipairs({{ "jit", "bit", "ffi" }}) do
          note("global " .. g, _G[g])
          note("loadstring " .. g, loadstring("return " .. g)())
        end
        note("table.move", table.move)
        note("package.searchpath", package.searchpath)
        return state, table.concat(found, ",")"""),
    )
    assert _signal(path) == ""


def test_lua_52_extensions_of_luajit_act_as_in_gopher_lua(tmp_path: Path) -> None:
    path = module(
        tmp_path,
        signal=textwrap.dedent("""
        local ok, e = pcall(function() local f = load("return 1") return f end)
        return state, table.concat({ tostring(math.log(8, 2) == math.log(8)), string.rep("ab", 3, ","),
          tostring(ok), (e:gsub("^.-: ", "")), type(string.gfind) }, "|")"""),
    )
    assert _signal(path) == "true|ababab|false|bad argument #1 to load (function expected, got string)|function"


_HOT_LOOPS = ("while true do end", "local x = 0 while true do x = x + 1 end", "for i = 1, math.huge do end")

_HUNG_IN_A_CHILD = """
import sys
from pathlib import Path
from recorder.format import InitCall, LoopCall
from replay.lua import LuaHandler
from replay.runtime import CrashSignature, MatchRuntime
from tests.lua.test_handler import HEADER
for path in sys.argv[1:]:
    rt = MatchRuntime(LuaHandler(Path(path)), HEADER, hang_timeout=30.0)
    rt.apply(InitCall({}))
    rt.hang_guard.limit = 0.5
    step = rt.apply(LoopCall(0))
    rt.close()
    print(path, step.crash is not None and step.crash.hung, flush=True)
"""


def test_the_hang_guard_stops_loops_the_jit_compiler_would_take(tmp_path: Path) -> None:
    # compiled LuaJIT code never calls the instruction hook: with the compiler on, these loops would never end
    # (in a child process, so that a loop that is not stopped fails the test instead of hanging the suite)
    paths = [str(module(tmp_path, f"hot{i}", loop=body)) for i, body in enumerate(_HOT_LOOPS)]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _HUNG_IN_A_CHILD, *paths],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"a hot loop was not stopped within 120 s: {exc.stdout!r}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [x for p in paths for x in (p, "True")]


_ORDER = textwrap.dedent("""
    local t = { [3] = "c", [1] = "a", [2] = "b", [0.5] = "h", [-1] = "m" }
    for i = 1, 30 do t["k" .. i] = i end
    t[true], t[false] = 1, 0
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = tostring(k) end
    local k, n = next(t), 0
    while k ~= nil do
      n = n + 1
      if tostring(k) ~= keys[n] then return state, "next disagrees with pairs at " .. n end
      k = next(t, k)
    end
    return state, table.concat(keys, ",")""")


def test_pairs_walks_one_fixed_order_in_every_lua_state(tmp_path: Path) -> None:
    # LuaJIT seeds its string hash per Lua state: its own order differs from one state to the next
    path = module(tmp_path, signal=_ORDER)
    strings = sorted(f"k{i}" for i in range(1, 31))
    native = ["1", "2", "3", "-1", "0.5", *strings, "false", "true"]
    assert [_signal(path).split(",") for _ in range(3)] == [native] * 3
    reverse = _signal(path, pairs_order="reverse").split(",")
    assert reverse == native[:3] + native[3:][::-1]


def test_functions_in_a_state_get_their_addresses_in_a_fixed_order(tmp_path: Path) -> None:
    # the state's text (json_encode, digests) names functions by the address each is given when first met
    source = "local s = {} for i = 1, 20 do s['f' .. i] = function() return i end end return s"
    values = []
    for _ in range(3):
        h = LuaHandler(module(tmp_path))
        values.append(h.state_value(h._lua.execute(source.encode())))
    assert values[0] == values[1] == values[2]
    assert values[0]["f1"] == "function: 0xc000010040"


def _bytewise_breaking_locale(tmp_path: Path) -> str:
    """A locale whose strcoll does not compare bytes (en_US.UTF-8: "a" before "B"), made with localedef."""
    if shutil.which("localedef") is None:
        pytest.skip("needs localedef to make an en_US.UTF-8 locale")
    done = subprocess.run(
        ["localedef", "-i", "en_US", "-f", "UTF-8", str(tmp_path / "en_US.UTF-8")], capture_output=True, timeout=120
    )
    if not (tmp_path / "en_US.UTF-8").is_dir():
        pytest.skip(f"localedef could not make en_US.UTF-8: {done.stderr[-200:]!r}")
    return str(tmp_path)


def test_strings_sort_by_their_bytes_in_any_locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Go compares strings bytewise; PUC Lua's < used strcoll, LuaJIT's compares bytes
    monkeypatch.setenv("LOCPATH", _bytewise_breaking_locale(tmp_path))
    before = locale.setlocale(locale.LC_COLLATE)
    try:
        locale.setlocale(locale.LC_COLLATE, "en_US.UTF-8")
        assert locale.strcoll("a", "B") < 0  # the locale does not compare bytes
        h = LuaHandler(module(tmp_path, signal='local t = {"b", "a", "B"} table.sort(t) return state, table.concat(t)'))
        state = h._lua.execute(b"return { b = 1, a = 2, B = 3 }")
        assert h._json_encode(state) == b'{"B":3,"a":2,"b":1}'
        assert h.state_canonical_bytes(state) == canonical_bytes({"B": 3, "a": 2, "b": 1})
        assert _signal(h.path) == "Bab"
    finally:
        locale.setlocale(locale.LC_COLLATE, before)


def test_a_stack_overflow_reads_as_in_gopher_lua(tmp_path: Path) -> None:
    # LuaJIT words it "stack overflow", with no position, and leaves its error handler little stack; Nakama
    # (gopher-lua) logs "file:line: stack overflow" and a traceback
    path = module(tmp_path, signal="local function f(n) return 1 + f(n + 1) end\n return state, f(1)")
    rt = MatchRuntime(LuaHandler(path), HEADER)
    try:
        rt.apply(InitCall({}))
        crash = rt.apply(SignalCall(0, "")).crash
    finally:
        rt.close()
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "local function f" in text)
    assert crash is not None and crash.error == f"{path}:{line}: stack overflow"
    frames = crash.traceback.splitlines()
    assert frames[0] == "stack traceback:" and frames[1] == f"\t{path}:{line}: in function 'f'"
    assert frames[-2:] == [f"\t{path}:{line + 1}: in main chunk", "\t[G]: ?"]
    nakama = CrashSignature.from_error("match_signal", f"m.lua:{line}: stack overflow", crash.traceback)
    assert CrashSignature.from_error("match_signal", crash.error, crash.traceback) == nakama
