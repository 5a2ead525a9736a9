"""The CPU cores this process may use: the runners' workers and the scene pipeline's readers are sized by it."""

from __future__ import annotations

import os


def usable_cpu_count() -> int:
    """CPU cores this process may run on (respects affinity and container limits where the OS exposes them)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
