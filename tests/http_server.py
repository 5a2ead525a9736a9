"""A loopback HTTP server that answers range requests, as the object stores that serve COGs do.

Only 127.0.0.1 is bound: tests never reach beyond this machine. Every request's path and Range header are
recorded, so a test can show that GDAL read a COG in windows rather than whole.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    root: Path
    log: list[tuple[str, str, str | None]]

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        requested = self.headers.get("Range")
        self.log.append((self.command, self.path, requested))
        path = (self.root / self.path.split("?")[0].lstrip("/")).resolve()
        if self.root.resolve() not in path.parents or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = _RANGE.match(requested or "")
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            data = data[start : end + 1]
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """Serve ``root`` on 127.0.0.1; yields the base URL and the list of (path, Range header) requests."""
    log: list[tuple[str, str, str | None]] = []
    handler = type("Handler", (_RangeHandler,), {"root": Path(root), "log": log})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
