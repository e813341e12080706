"""The in-process match runtime: Nakama's match semantics, one recorded call at a time.

``reproduce(recording, handler, options)`` replays a recording into a handler (``load_handler``: a Python file,
a Lua module or a JavaScript bundle) through a ``MatchRuntime`` and returns a ``ReplayResult`` with its ``Verdict``: the crash again, or
why not. Time, randomness and storage reach the handler only through the seeded ``Nk``; the ``Dispatcher`` keeps
Nakama's broadcast, kick and label rules. A hang guard stops runaway callbacks, and ``reproduce_supervised`` runs
the same replay in a ``HandlerProcess`` the handler can neither block nor take down (``Limits``, ``Death``).
``CrashSignature`` says whether two crashes are the same; ``MatchDriver`` runs a handler live for scripted
clients (``serve``, the fuzzer, captures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.runtime._dispatcher import Dispatcher
    from replay.runtime._driver import MatchDriver
    from replay.runtime._handlers import Handler, load_handler
    from replay.runtime._isolation import fresh_imports, reproduce_isolated
    from replay.runtime._nk import Nk
    from replay.runtime._result import AfterStop, Crash, Divergence, ReplayResult, StepResult
    from replay.runtime._resume import ResumePoint, resume_point
    from replay.runtime._runtime import MatchRuntime, ReplayOptions, iter_steps, reproduce
    from replay.runtime._signature import (
        CrashSignature,
        LoggedCrash,
        js_error_class,
        lua_error_class,
        parse_crash_log_line,
        same_crash,
    )
    from replay.runtime._supervisor import Death, HandlerProcess, Limits, reproduce_supervised
    from replay.runtime._verdict import Verdict, decide

__all__ = [
    "AfterStop",
    "Crash",
    "CrashSignature",
    "Death",
    "Dispatcher",
    "Divergence",
    "Handler",
    "HandlerProcess",
    "Limits",
    "LoggedCrash",
    "MatchDriver",
    "MatchRuntime",
    "Nk",
    "ReplayOptions",
    "ReplayResult",
    "ResumePoint",
    "StepResult",
    "Verdict",
    "decide",
    "fresh_imports",
    "iter_steps",
    "js_error_class",
    "load_handler",
    "lua_error_class",
    "parse_crash_log_line",
    "reproduce",
    "reproduce_isolated",
    "reproduce_supervised",
    "resume_point",
    "same_crash",
]

__getattr__, __dir__ = lazy_exports(__name__)
