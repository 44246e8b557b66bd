"""A scriptable WeCom-shaped HTTP stub, for transport behaviour the simulator can't be made to show on cue."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PREFIX = "/cgi-bin/"


class Stub:
    """Responses are scripted per path as (status, body, delay_s); an exhausted script answers `default`."""

    def __init__(self) -> None:
        self.scripts: dict[str, deque] = defaultdict(deque)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.token_counter = 0
        self.token_delay = 0.0
        self.expires_in = 7200
        self.valid_tokens: set[str] = set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                path = url.path[len(PREFIX) :] if url.path.startswith(PREFIX) else url.path
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with stub.lock:
                    stub.requests.append({"method": method, "path": path, "query": query, "body": body})
                status, payload, delay = stub.answer(path, query)
                if delay:
                    time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/cgi-bin"

    def answer(self, path: str, query: dict) -> tuple[int, object, float]:
        with self.lock:
            script = self.scripts.get(path)
            if script:
                return script.popleft()
        if path == "gettoken":
            with self.lock:
                self.token_counter += 1
                token = f"TOKEN{self.token_counter}"
                self.valid_tokens.add(token)
            return (
                200,
                {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.expires_in},
                self.token_delay,
            )
        if query.get("access_token") not in self.valid_tokens:
            return 200, {"errcode": 40014, "errmsg": "invalid access_token"}, 0
        return 200, {"errcode": 0, "errmsg": "ok", "path": path}, 0

    def script(self, path: str, *responses) -> None:
        """Each response: a dict (HTTP 200 JSON), or (status, body) / (status, body, delay)."""
        for response in responses:
            if isinstance(response, dict):
                response = (200, response, 0)
            elif len(response) == 2:
                response = (*response, 0)
            self.scripts[path].append(response)

    def calls(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
