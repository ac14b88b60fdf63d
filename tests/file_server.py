"""A file server on 127.0.0.1 (http.server in a thread) for the tests of downloads: it honours Range and If-Range
as Hugging Face and GitHub do, and misbehaves on request (a cut connection, a slow send), so what goes wrong on a
user's network is made to happen here (tests/io/test_catalog.py, tests/app/test_catalog_dock.py)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_no_proxy(monkeypatch):
    """For a test module that imports it: one torch thread, and requests to 127.0.0.1 never sent through a proxy."""
    torch.set_num_threads(1)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


class Server:
    """A file server on 127.0.0.1 that honours Range and If-Range (by ETag), and misbehaves on request: ``cut``
    drops the connection of the next whole-file answer after that many bytes, ``delay`` sleeps between 1-kB
    blocks. ``requests`` records (path, Range, If-Range) of every GET."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.cut: int | None = None
        self.delay = 0.0
        self.requests: list[tuple[str, str | None, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                asked, if_range = self.headers.get("Range"), self.headers.get("If-Range")
                server.requests.append((path, asked, if_range))
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                etag = server.etags.get(path, f'"{hashlib.sha256(data).hexdigest()[:16]}"')
                start = 0
                if asked and (if_range is None or if_range == etag):
                    start = int(asked.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", etag)
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                body = data[start:]
                if server.cut is not None and start == 0:
                    cut, server.cut = server.cut, None
                    self.wfile.write(body[:cut])
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                for offset in range(0, len(body), 1024 if server.delay else 1 << 16):
                    try:
                        self.wfile.write(body[offset : offset + (1024 if server.delay else 1 << 16)])
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    if server.delay:
                        time.sleep(server.delay)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [asked for p, asked, _ in self.requests if p == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url(path: str) -> str:
    """An address on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
