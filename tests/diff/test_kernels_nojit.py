"""Run tests/diff/test_kernels.py again with NUMBA_DISABLE_JIT=1 (every kernel line as plain Python).

CI runs only ``python -m pytest``, so the second pass happens here, in a subprocess with its own
environment: numba reads NUMBA_DISABLE_JIT once, at import.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.common.paths import ROOT


@pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="this session already runs without the JIT"
)
def test_kernel_tests_pass_without_jit() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONHASHSEED="0")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/diff/test_kernels.py", "-p", "no:cacheprovider", "-x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) >= 20, out[-2000:]
    assert not re.search(r"\d+ (failed|error|skipped)", out), out[-2000:]
