"""Run a protocol engine on real interfaces through AF_PACKET raw sockets,
or (MemoryWire, at the end) on in-memory links under a fake clock.

    ports = {name: RawPort(ns, name) for name in ("veth0", "veth1")}
    with EngineLoop(engine, ports) as loop:     # a thread, real monotonic time
        wait_until(lambda: loop.call(engine.member_enabled, "veth0"), 10)

The loop feeds every received frame to `engine.process_packet(port, frame,
now)`, calls `engine.run(now)` whenever `engine.next_wakeup()` is due and
sends what it returns; `accept` plays the switch's demultiplexer. Frames the socket sees leaving the interface (our own
transmissions) are not fed back. `call()` runs a function under the loop's
lock so tests can read or reconfigure the engine while it runs.
"""
import select
import socket
import struct
import threading
import time

from helpers import netns

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
AUXDATA = struct.Struct("IIIHHHH")     # struct tpacket_auxdata


class RawPort:
    def __init__(self, ns: str | None, ifname: str):
        self.ifname = ifname
        ctx = netns.entered(ns) if ns else _nullcontext()
        with ctx:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                      socket.htons(ETH_P_ALL))
            self.sock.bind((ifname, 0))
        # The kernel strips a received 802.1Q tag into metadata; ask for it
        # back so tagged frames read as they were on the wire.
        self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frame: bytes) -> None:
        self.sock.send(frame.ljust(60, b"\0"))     # pad to the Ethernet minimum

    def recv_all(self) -> list[bytes]:
        frames = []
        while True:
            try:
                frame, ancdata, _flags, addr = self.sock.recvmsg(
                    65535, socket.CMSG_SPACE(AUXDATA.size))
            except BlockingIOError:
                return frames
            if addr[2] != PACKET_OUTGOING:
                frames.append(_with_vlan_tag(frame, ancdata))

    def close(self) -> None:
        self.sock.close()


def _with_vlan_tag(frame: bytes, ancdata) -> bytes:
    for level, kind, data in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUXDATA.size:
            status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(data)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]
    return frame


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class EngineLoop:
    def __init__(self, engine, ports: dict[str, RawPort], accept=None,
                 max_sleep: float = 0.05):
        self.engine = engine
        self.accept = accept or (lambda frame: True)   # the switch's demux
        self.ports = ports
        self.max_sleep = max_sleep
        self.lock = threading.RLock()
        self.muted = set()          # ports whose transmissions we drop
        self.sent = {name: 0 for name in ports}
        self.received = {name: 0 for name in ports}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.error = None

    def __enter__(self) -> "EngineLoop":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for port in self.ports.values():
            port.close()
        if self.error and not exc[0]:
            raise self.error

    def call(self, fn, *args):
        if self.error:
            raise self.error
        with self.lock:
            return fn(*args)

    def mute(self, *names: str) -> None:
        with self.lock:
            self.muted.update(names)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self.lock:
                    wake = self.engine.next_wakeup()
                now = time.monotonic()
                timeout = self.max_sleep if wake is None else \
                    max(0.0, min(self.max_sleep, wake - now))
                readable, _, _ = select.select(list(self.ports.values()), [], [], timeout)
                with self.lock:
                    for port in readable:
                        for frame in filter(self.accept, port.recv_all()):
                            self.received[port.ifname] += 1
                            self.engine.process_packet(port.ifname, frame,
                                                       time.monotonic())
                    for name, frame in self.engine.run(time.monotonic()):
                        if name not in self.muted:
                            self.ports[name].send(frame)
                            self.sent[name] += 1
        except Exception as e:          # surfaced by call()/__exit__
            self.error = e


class MemoryWire:
    """Engines joined by in-memory links under a fake clock (unit tests).

        wire = MemoryWire([((a, "a1"), (b, "b1"))])
        wire.run_until(5.0)          # ticks of `step` seconds

    Every tick runs each engine at `now` and delivers what it sends to the
    other end at the same instant (a few rounds, so replies go out at once).
    `cut` holds (engine, port) ends whose transmissions are lost; `sent`
    logs (time, engine, port, frame) of everything transmitted.
    """

    def __init__(self, links, step: float = 0.05, now: float = 0.0):
        self.peer, engines = {}, {}
        for (ea, pa), (eb, pb) in links:
            self.peer[(id(ea), pa)] = (eb, pb)
            self.peer[(id(eb), pb)] = (ea, pa)
            engines.update({id(ea): ea, id(eb): eb})
        self.engines = list(engines.values())
        self.step, self.now = step, now
        self.cut: set = set()
        self.sent: list = []

    def cut_link(self, engine, port) -> None:
        """Lose both directions of the link at (engine, port)."""
        far_engine, far_port = self.peer[(id(engine), port)]
        self.cut |= {(id(engine), port), (id(far_engine), far_port)}

    def restore(self) -> None:
        self.cut.clear()

    def tick(self) -> None:
        for _ in range(4):
            busy = False
            for engine in self.engines:
                for port, frame in engine.run(self.now):
                    busy = True
                    self.sent.append((self.now, engine, port, frame))
                    peer = self.peer.get((id(engine), port))
                    if peer and (id(engine), port) not in self.cut:
                        peer[0].process_packet(peer[1], frame, self.now)
            if not busy:
                return

    def run_until(self, t: float) -> None:
        while self.now < t - 1e-9:
            self.tick()
            self.now = round(self.now + self.step, 9)
        self.tick()
