"""Test helpers for alert delivery: a free loopback port and webhook receivers Alertmanager can notify."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


class Receiver:
    """Webhook receivers on 127.0.0.1: every POST is kept as (receiver name from the path, time, body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.posts.append((self.path.strip("/"), time.monotonic(), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def alerts_for(self, name: str) -> list[tuple[float, dict[str, Any]]]:
        """(time received, alert) of every alert notified to receiver ``name``."""
        with self.lock:
            return [(at, alert) for who, at, body in self.posts if who == name for alert in body["alerts"]]

    def got(self, name: str, alert_id: str, status: str = "firing") -> bool:
        return any(a["labels"]["alert_id"] == alert_id and a["status"] == status for _, a in self.alerts_for(name))
