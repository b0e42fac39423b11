"""A real HTTP gallery on loopback for the gallery tests: Range requests, a one-time dropped connection, slow paths.

Every request is logged (``server.log``: method, path, Range header, status) so tests can see a resume happen.
"""

from __future__ import annotations

import email.utils
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 256 * 1024


class GalleryServer:
    def __init__(self) -> None:
        self.files: dict[str, Path] = {}          # URL path -> file on disk
        self.texts: dict[str, str] = {}           # URL path -> text body (index, base configs)
        self.drop_once: dict[str, int] = {}       # URL path -> drop the connection after this many body bytes, once
        self.delay: dict[str, float] = {}         # URL path -> seconds to sleep per chunk
        self.log: list[dict[str, Any]] = []
        self.active: dict[str, int] = {}          # URL path -> bodies being sent now
        self.max_parallel = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> GalleryServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.log if r["path"] == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet; we keep our own log
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                rng = self.headers.get("Range")
                entry = {"method": self.command, "path": path, "range": rng, "if_range": self.headers.get("If-Range"),
                         "time": time.monotonic()}
                with server._lock:
                    server.log.append(entry)
                if path in server.texts:
                    body = server.texts[path].encode()
                    entry["status"] = 200
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-yaml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(body)
                    return
                file = server.files.get(path)
                if file is None:
                    entry["status"] = 404
                    self.send_error(404)
                    return
                size = file.stat().st_size
                etag = f'"{size}-{int(file.stat().st_mtime)}"'
                start, end, status = 0, size - 1, 200
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                if m and (self.headers.get("If-Range") in (None, etag)):
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else size - 1
                    if start >= size:
                        entry["status"] = 416
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                entry["status"] = status
                self.send_response(status)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", email.utils.formatdate(file.stat().st_mtime, usegmt=True))
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if head:
                    return
                with server._lock:
                    drop = server.drop_once.pop(path, None)
                    server.active[path] = server.active.get(path, 0) + 1
                    server.max_parallel = max(server.max_parallel, sum(server.active.values()))
                sent = 0
                try:
                    with open(file, "rb") as f:
                        f.seek(start)
                        remaining = end - start + 1
                        while remaining > 0:
                            n = min(CHUNK, remaining)
                            if drop is not None and sent + n > drop:
                                n = drop - sent
                            data = f.read(n)
                            self.wfile.write(data)
                            sent += len(data)
                            remaining -= len(data)
                            if drop is not None and sent >= drop:
                                entry["dropped_at"] = start + sent
                                self.wfile.flush()
                                self.connection.shutdown(socket.SHUT_RDWR)
                                self.close_connection = True
                                return
                            if server.delay.get(path):
                                time.sleep(server.delay[path])
                except (BrokenPipeError, ConnectionResetError):
                    entry["client_gone"] = True
                finally:
                    with server._lock:
                        server.active[path] -= 1

        return Handler
