"""A local HTTP server for tests: each path answers with a status and body, optionally
after failing its first requests (HEAD or GET) with another status, or slowly."""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    status: int = 200
    body: bytes = b""
    fail_first: int = 0      # the first k requests of this path get ``fail_status``
    fail_status: int = 503
    delay_s: float = 0.0     # wait this long before answering a GET (a slow server)
    etag: str = ""           # sent as the ETag header when set


class HttpServer:
    """``with HttpServer({"/a.jpg": Route(body=data)}) as server: server.url("/a.jpg")``."""

    def __init__(self, routes: dict[str, Route]):
        self.routes = routes
        self.requests: Counter = Counter()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, with_body: bool):
                path = self.path.split("?", 1)[0]
                route = owner.routes.get(path, Route(status=404))
                owner.requests[path] += 1
                failing = owner.requests[path] <= route.fail_first
                status, body = (route.fail_status, b"") if failing else (route.status, route.body)
                if with_body and route.delay_s:
                    time.sleep(route.delay_s)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if route.etag:
                    self.send_header("ETag", route.etag)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802
                self._answer(with_body=False)

            def do_GET(self):  # noqa: N802
                self._answer(with_body=True)

            def log_message(self, *args):  # the server's own log is not the pipeline's
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, userinfo: str = "", query: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}{self.host}{path}{'?' + query if query else ''}"

    def __enter__(self) -> "HttpServer":
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
