"""Nakama JavaScript/TypeScript match handlers in the replay runtime (QuickJS through ``quickjs-ng``).

``JsHandler("build/index.js", "arena")`` loads the very bundle a studio deploys (``load_handler`` picks it for
``.js`` and ``.ts`` files) behind the Python handler interface: ``InitModule`` runs with a recording
initializer, callbacks get Nakama's JS arguments and their results are judged with Nakama 3.40's rules; a hung
callback's context is abandoned (``EngineAbandoned``). ``compile_typescript`` turns a ``.ts`` module into the one
ES5 script Nakama loads. ``wrap_bundle`` puts the capture wrapper (``recorder/capture/modules/
nkreplay_capture.js``, ``CAPTURE_JS``) into a bundle so that Nakama logs its matches for ``ingest``.

Modules: ``_handler`` (the handler, host functions), ``_engine`` (the QuickJS context and what interrupts it),
``_typescript``, ``_capture``, and ``prelude.js`` (Nakama's JS ``ctx``, ``logger``, ``nk``, dispatcher and
return-value rules, evaluated before the bundle). Fidelity to goja: ``docs/javascript.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replay._exports import lazy_exports

if TYPE_CHECKING:  # the public names and their modules; each is imported on first use (replay._exports)
    from replay.js._capture import CAPTURE_JS, wrap_bundle, wrap_statement
    from replay.js._engine import EngineAbandoned
    from replay.js._handler import JsError, JsHandler, JsState
    from replay.js._typescript import compile_typescript, find_tsc

__all__ = [
    "CAPTURE_JS",
    "EngineAbandoned",
    "JsError",
    "JsHandler",
    "JsState",
    "compile_typescript",
    "find_tsc",
    "wrap_bundle",
    "wrap_statement",
]

__getattr__, __dir__ = lazy_exports(__name__)
