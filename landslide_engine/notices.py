"""The engine's one channel for what the analyst must see: warnings, beside progress and cancel.

Every entry point that can warn (``predict_scene``, ``stack_to_file``, ``write_slope``) takes
``warn: Callable[[str], None] | None``. Each warning goes to the caller's ``warn`` (the CLI prints it, the
Toolbox pushes it to the processing feedback, the dock shows it), into the run's report (``run.json``), and to
the ``landslide_engine`` logger, whose record is marked :data:`DELIVERED` when the caller already got it, so a
front end that also routes the logger to the user (the CLI does) shows each warning once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

Warn = Callable[[str], None]
Info = Callable[[str], None]
"""What a run found about its inputs that the analyst should see, though nothing is wrong (the reflectance
scale it read from the scene); logged at INFO level."""

DELIVERED = "landslide_delivered"
"""Attribute set on a log record whose message already reached the caller's ``warn``."""

_log = logging.getLogger("landslide_engine")


class Warnings:
    """The warnings of one run: told to the caller as they come, logged, and kept for the report."""

    def __init__(self, warn: Warn | None = None) -> None:
        self._warn = warn
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        if message in self.lines:  # one warning per cause, however many bands or windows it came from
            return
        self.lines.append(message)
        _log.warning(message, extra={DELIVERED: self._warn is not None})
        if self._warn is not None:
            self._warn(message)

    def extend(self, messages: list[str]) -> None:
        for message in messages:
            self(message)


def inform(info: Info | None, message: str) -> None:
    """Tell ``info`` what the run found, and log it."""
    _log.info(message, extra={DELIVERED: info is not None})
    if info is not None:
        info(message)


def delivered(record: logging.LogRecord) -> bool:
    """Whether ``record`` is a warning that the caller's ``warn`` already received."""
    return bool(getattr(record, DELIVERED, False))
