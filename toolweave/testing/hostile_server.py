"""A hostile HTTP server on 127.0.0.1 for tests (never a product default): echoes credentials in
every encoding, trickles, sends gzip bombs and huge bodies, answers LLM calls with key-echoing errors.

    with HostileServer() as srv:
        srv.url            # http://127.0.0.1:PORT
        srv.requests       # (method, path, headers) received

Paths: `/echo...` echoes the request's credentials (Authorization, X-Key, `key` query) in all forms
of `leak_forms`; `/trickle` sends a byte every 0.2 s for ~10 s; `/bomb` a gzip body inflating to
`BOMB_BYTES`; `/huge` an endless plain body; `/drop` closes without answering; `/badgzip`, `/brotli`,
`/shortbody`, `/charset` send broken or unexpected encodings; `/status/NNN` answers NNN;
`/v1/chat/completions` 502 with an HTML page of the request headers, or 401 "Incorrect API key
provided: KEY" when the body asks for model `fatal`, 401 "key ending ...<its last 16 characters>" for
model `ending`.
Anything else echoes method, path and headers as JSON.
"""
from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

BOMB_BYTES = 1_000_000_000  # what /bomb inflates to


def leak_forms(key: str) -> list[str]:
    """How a careless server, proxy or library may write `key` (the canary tests grep for these)."""
    return [key, key.upper(), key.lower(), quote(key, safe=""), quote_plus(key), key.encode().hex(),
            key.encode().hex().upper(), base64.b64encode(key.encode()).decode(),
            base64.urlsafe_b64encode(key.encode()).decode(), base64.b64encode(f"user:{key}".encode()).decode(),
            json.dumps(key)[1:-1].replace("/", "\\/"), key[:12]]


def _gzip_bomb() -> bytes:
    """One gzip member of 10 MB of zeros (~10 KB); /bomb sends it BOMB_BYTES / 10 MB times."""
    return gzip.compress(b"\0" * 10_000_000, compresslevel=9)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "HostileServer._Server"

    def log_message(self, *a):
        pass

    def _credentials(self) -> list[str]:
        query = parse_qs(urlsplit(self.path).query)
        found = [self.headers.get("Authorization", "").removeprefix("Bearer "), self.headers.get("X-Key", ""),
                 *query.get("key", [])]
        return [f for f in found if f]

    def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else b""
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        path = urlsplit(self.path).path
        if path.startswith("/echo"):
            keys = self._credentials()
            echo = {"forms": [f for k in keys for f in leak_forms(k)],
                    "headers": dict(self.headers), "path": self.path}
            # the key also cut at an arbitrary point, as a server's own limit would cut it
            text = json.dumps(echo) + "".join(f" tail={k[:10]}" for k in keys)
            self._send(200, text.encode())
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "50")
            self.end_headers()
            for _ in range(50):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
        elif path == "/bomb":
            member = self.server.bomb
            n = BOMB_BYTES // 10_000_000
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(member) * n))
            self.end_headers()
            try:
                for _ in range(n):
                    self.wfile.write(member)
            except OSError:
                return
        elif path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(10 ** 10))
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"a" * 65536)
            except OSError:
                return
        elif path == "/drop":  # the connection closes without a response
            self.close_connection = True
            self.connection.shutdown(2)
        elif path == "/badgzip":
            self._send(200, b"\x1f\x8b\x08\x00garbage that is not deflate", extra={"Content-Encoding": "gzip"})
        elif path == "/brotli":
            self._send(200, b"\x0b\x02\x80hello\x03", extra={"Content-Encoding": "br"})
        elif path == "/shortbody":  # promises more than it sends, then closes
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"partial": ')
            self.close_connection = True
        elif path == "/charset":
            self._send(200, "caf\u00e9".encode("latin-1"), "text/plain; charset=no-such-charset")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, json.dumps({"status": code}).encode())
        elif path.endswith("/chat/completions"):
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            model = json.loads(payload or b"{}").get("model") if payload else None
            if model == "fatal":
                self._send(401, json.dumps({"error": {"message": f"Incorrect API key provided: {key}. You can "
                                                                 "find your API key at ..."}}).encode())
            elif model == "ending":  # the key's last 16 characters, as some gateways quote it
                self._send(401, json.dumps({"error": {"message": f"invalid key: key ending ...{key[-16:]} is "
                                                                 "not authorised"}}).encode())
            else:
                rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in self.headers.items())
                self._send(502, f"<html><body><h1>502 Bad Gateway</h1><table>{rows}</table>"
                                f"<p>{quote(key)}</p></body></html>".encode(), "text/html")
        else:
            self._send(200, json.dumps({"method": self.command, "path": self.path,
                                        "headers": dict(self.headers)}).encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class HostileServer:
    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        requests: list
        bomb: bytes

    def __init__(self) -> None:
        self.server = self._Server(("127.0.0.1", 0), _Handler)
        self.server.requests = []
        self.server.bomb = _gzip_bomb()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def requests(self) -> list:
        return self.server.requests

    def __enter__(self) -> "HostileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
