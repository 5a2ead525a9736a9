"""The CLIs run under a pseudo-terminal, as typed by a person: the only way to reach the progress-line code."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT


def run_in_terminal(*args: str | Path, timeout: float = 300) -> tuple[int, str]:
    """``python args...`` with stdin, stdout and stderr on a pseudo-terminal; its exit code and what it showed."""
    controller, terminal = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    process = subprocess.Popen(
        [sys.executable, *map(str, args)], stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT, env=env
    )
    os.close(terminal)
    shown = bytearray()
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError as exc:  # EIO: the terminal's other end closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            shown += chunk
        code = process.wait(timeout=timeout)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return code, shown.decode("utf-8", "replace")


def assert_ran_cleanly(code: int, shown: str) -> None:
    assert "Traceback" not in shown, shown[-3000:]
    assert code == 0, shown[-3000:]
