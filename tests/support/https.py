"""An HTTPS server on a loopback address, port 443 by default, that serves what a test sets per Host.

For MTA-STS (``https://mta-sts.<domain>/.well-known/mta-sts.txt``) and TLS-RPT collectors:
``pages[(host, path)] = (status, headers, body)``; a host in ``down`` has its connections
closed without an answer; ``requests`` lists every ``(method, host, path, body, content type)``
served.
It runs ``http.server`` in a thread with the certificate the test gives (a trustme leaf).
"""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path
from typing import Any


class HttpsServer:
    def __init__(self, host: str, cert_file: Path, key_file: Path, port: int = 443) -> None:
        self.host, self.port = host, port
        self.pages: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        self.down: set[str] = set()
        self.requests: list[tuple[str, str, str, bytes, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer.lock:
                    outer.requests.append((method, host, self.path, body, self.headers.get("Content-Type", "")))
                    page = outer.pages.get((host, self.path))
                    down = host in outer.down
                if down:
                    self.close_connection = True
                    self.connection.close()
                    return
                status, headers, content = page or (404, {"Content-Type": "text/plain"}, b"not found\n")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert_file), str(key_file))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def policy(self, domain: str, text: str, status: int = 200, **headers: str) -> None:
        """Serve ``text`` as the MTA-STS policy of ``domain``."""
        with self.lock:
            self.pages[(f"mta-sts.{domain}", "/.well-known/mta-sts.txt")] = (
                status, {"Content-Type": "text/plain", **headers}, text.encode())

    def fetches(self, domain: str) -> int:
        with self.lock:
            return sum(1 for _, host, path, _, _ in self.requests
                       if host == f"mta-sts.{domain}" and path == "/.well-known/mta-sts.txt")

    def posts(self, host: str, path: str) -> list[tuple[bytes, str]]:
        """The bodies and content types POSTed to ``host`` at ``path``."""
        with self.lock:
            return [(body, ctype) for method, h, p, body, ctype in self.requests
                    if method == "POST" and h == host and p == path]

    def start(self) -> HttpsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
