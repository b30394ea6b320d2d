"""`python -m toolweave.testing.fake_engine PORT NAME`: a cheap stand-in for vLLM's OpenAI server in
tests of the engine's process handling (never a product default). Answers GET /v1/models with NAME,
starts one child process (as vLLM starts its engine core) and prints `pids SERVER CHILD`."""
from __future__ import annotations

import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def main(port: int, name: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    print(f"pids {__import__('os').getpid()} {child.pid}", flush=True)
    body = json.dumps({"object": "list", "data": [{"id": name, "object": "model"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
