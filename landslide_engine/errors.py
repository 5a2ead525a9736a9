"""Errors that an analyst can act on.

Every failure caused by the user's input (a missing band, a corrupt file, extents
that do not overlap, a model that does not fit the data) is raised as
:class:`InputError` with a one-line message naming the file, band or parameter.
The CLI turns it into exit code 2 without a traceback; the QGIS plugin turns it
into a ``QgsProcessingException`` carrying the same line.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user; the message is one actionable line."""


class Cancelled(Exception):
    """The caller asked the engine to stop; nothing was written."""
