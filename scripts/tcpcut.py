"""A TCP relay that can cut a node off from its database, for the fault tests and chaos runs.

    relay = TcpCutter("127.0.0.1", pg_port).start()   # the node connects to relay.port instead
    relay.cut()        # every connection dropped (RST), new ones refused, until...
    relay.cut("blackhole")  # ...or: bytes stop flowing, connections stay open (a silent network)
    relay.restore()
    relay.stop()

Threads, not the reactor: it must keep relaying (or not) whatever the process under test does.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time


class TcpCutter:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((listen_host, 0))
        self._server.listen(128)
        self.port = self._server.getsockname()[1]
        self.mode = "open"  # open | drop | blackhole
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stopping = False
        self.dropped = 0

    def start(self) -> "TcpCutter":
        threading.Thread(target=self._accept_loop, name="tcpcut-accept", daemon=True).start()
        return self

    def cut(self, mode: str = "drop") -> int:
        """Cut every connection ("drop": reset now; "blackhole": stop relaying, keep them open);
        returns how many were open."""
        if mode not in ("drop", "blackhole"):
            raise ValueError(mode)
        with self._lock:
            self.mode = mode
            pairs = list(self._pairs)
            if mode == "drop":
                self._pairs.clear()
        if mode == "drop":
            for pair in pairs:
                for sock in pair:
                    _reset(sock)
            self.dropped += len(pairs)
        return len(pairs)

    def restore(self) -> None:
        with self._lock:
            self.mode = "open"
            pairs = list(self._pairs)
            self._pairs.clear()
        # Connections held open in a blackhole are broken by now for their peers: end them.
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def stop(self) -> None:
        self._stopping = True
        self.cut("drop")
        try:
            self._server.close()
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.mode != "open":
                if self.mode == "drop":
                    _reset(client)
                else:
                    with self._lock:
                        self._pairs.append((client, client))  # held, silent
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), name="tcpcut-relay", daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        socks = [a, b]
        try:
            while not self._stopping:
                readable, _, _ = select.select(socks, [], [], 0.2)
                if self.mode == "blackhole":
                    time.sleep(0.05)
                    continue  # hold the bytes: nothing reaches the other side
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                if (a, b) in self._pairs:
                    self._pairs.remove((a, b))
            if self.mode != "blackhole":
                for sock in socks:
                    _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped connection looks to its peer."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
