"""Sends an exporter's run() output: [((host, port), datagram), ...].

The engines stay pure; this is the only part that touches the network.
Send errors (no route, collector port closed and ICMP reported) are counted
per target and never raised: an unreachable collector must not stop the
switch.
"""
from __future__ import annotations

import socket
from collections import Counter


class UdpSender:
    def __init__(self):
        self._sockets: dict[int, socket.socket] = {}
        self._resolved: dict[tuple[str, int], tuple] = {}
        self.sent: Counter = Counter()
        self.errors: Counter = Counter()

    def _resolve(self, target: tuple[str, int]) -> tuple:
        if target not in self._resolved:
            family, _, _, _, sockaddr = socket.getaddrinfo(
                target[0], target[1], type=socket.SOCK_DGRAM)[0]
            self._resolved[target] = (family, sockaddr)
        return self._resolved[target]

    def _socket(self, family: int) -> socket.socket:
        if family not in self._sockets:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._sockets[family] = sock
        return self._sockets[family]

    def send(self, datagrams) -> int:
        """Sends every datagram; returns how many left without error."""
        ok = 0
        for target, data in datagrams:
            name = f"{target[0]}:{target[1]}"
            try:
                family, sockaddr = self._resolve(tuple(target))
                self._socket(family).sendto(data, sockaddr)
            except OSError as e:
                self.errors[f"{name}: {e.strerror or e}"] += 1
                continue
            self.sent[name] += 1
            ok += 1
        return ok

    def show(self) -> dict:
        return {"sent": dict(self.sent), "errors": dict(self.errors)}

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
