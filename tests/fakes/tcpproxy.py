"""A TCP relay on 127.0.0.1 that can cut connections mid-stream (for protocols that are not HTTP, like SSH).

``proxy.cut(after_bytes=N, times=T, direction="down")`` makes the next T connections close (both sides,
abruptly) once N bytes went from the server to the client ("down") or from the client to the server
("up"); every other connection is relayed unchanged. tests/fakes/faultproxy.py is the HTTP counterpart.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import Literal

Direction = Literal["up", "down"]


@dataclass
class _Cut:
    after: int
    direction: Direction


class TcpCutProxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.pending: list[_Cut] = []
        self.connections = 0
        self.cuts_done = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="tcp-cut-proxy", daemon=True)

    def start(self) -> TcpCutProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self, after_bytes: int, times: int = 1, direction: Direction = "down") -> None:
        with self._lock:
            self.pending += [_Cut(after_bytes, direction) for _ in range(times)]

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self.connections += 1
                rule = self.pending.pop(0) if self.pending else None
                self._sockets += [client, server]
            for source, target, direction in ((client, server, "up"), (server, client, "down")):
                limit = rule.after if rule is not None and rule.direction == direction else None
                threading.Thread(target=self._pump, args=(source, target, limit, (client, server)),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, limit: int | None,
              pair: tuple[socket.socket, socket.socket]) -> None:
        relayed = 0
        try:
            while data := source.recv(65536):
                if limit is not None and relayed + len(data) >= limit:
                    target.sendall(data[: max(0, limit - relayed)])
                    with self._lock:
                        self.cuts_done += 1
                    break
                target.sendall(data)
                relayed += len(data)
        except OSError:
            pass
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
