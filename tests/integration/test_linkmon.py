"""vswitch.linkmon against the real kernel, each test in its own namespace.

Needs root (network namespaces).  Monitors are opened in the test namespace
either with LinkMonitor(netns=ns) - a helper thread does setns(2) and opens
the sockets, so pytest's thread never moves - or, for the default "current
namespace" behaviour, inside helpers.netns.entered(ns).  No traffic is sent
anywhere; only links are created, changed and deleted inside the namespace.
"""
import asyncio
import fcntl
import os
import select
import struct
import time

import pytest

from helpers import netns
from vswitch.linkmon import LinkEvent, LinkMonitor

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root for network namespaces")

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


class Watch:
    """Collects a monitor's events; `until` waits for a condition on the
    latest event per name, then keeps draining briefly so that a later
    event contradicting it would be seen."""

    def __init__(self, mon: LinkMonitor):
        self.mon = mon
        self.events: list[LinkEvent] = []
        self.latest: dict[str, LinkEvent] = {}

    def _take(self, timeout: float) -> None:
        ready, _, _ = select.select([self.mon], [], [], timeout)
        if ready:
            for ev in self.mon.drain():
                self.events.append(ev)
                self.latest[ev.name] = ev

    def until(self, cond, timeout: float = 5.0, settle: float = 0.2):
        start = len(self.events)
        deadline = time.monotonic() + timeout
        while not cond(self.latest):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"condition not met; events: "
                            f"{self.events[start:]}")
            self._take(left)
        end = time.monotonic() + settle
        while (left := end - time.monotonic()) > 0:
            self._take(left)
        assert cond(self.latest), f"condition undone: {self.events[start:]}"
        return self.events[start:]


def state(name, **want):
    """Condition: the latest event for `name` has these field values."""
    def cond(latest):
        ev = latest.get(name)
        return ev is not None and all(getattr(ev, k) == v
                                      for k, v in want.items())
    return cond


def both(*conds):
    return lambda latest: all(c(latest) for c in conds)


@pytest.fixture
def ns():
    with netns.namespace("lmon") as name:
        yield name


@pytest.fixture
def mon(ns):
    m = LinkMonitor(netns=ns)
    m.snapshot()
    yield m
    m.close()


def veth_names():
    stem = netns.unique("lm", 14)
    return stem + "a", stem + "b"


def test_veth_lifecycle(ns, mon):
    w = Watch(mon)
    a, b = veth_names()
    netns.run(ns, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
    new = w.until(both(state(a, exists=True), state(b, exists=True)))
    for name in (a, b):
        ev = w.latest[name]
        assert (ev.admin_up, ev.carrier) == (False, False)
        assert ev.mtu == 1500 and ev.mac and len(ev.mac) == 17
        assert ev.ifindex > 1
    assert {e.name for e in new} >= {a, b}
    assert w.latest[a].ifindex != w.latest[b].ifindex

    # One end up while the peer is down: admin up, no carrier.
    netns.run(ns, "ip", "link", "set", a, "up")
    w.until(state(a, admin_up=True))
    assert w.latest[a].carrier is False
    assert (w.latest[b].admin_up, w.latest[b].carrier) == (False, False)

    # Peer up: carrier on both ends.
    netns.run(ns, "ip", "link", "set", b, "up")
    w.until(both(state(a, carrier=True), state(b, carrier=True)))
    assert w.latest[a].admin_up and w.latest[b].admin_up

    # Peer down again: a keeps admin up but loses carrier.
    netns.run(ns, "ip", "link", "set", b, "down")
    w.until(both(state(a, carrier=False), state(b, admin_up=False)))
    assert w.latest[a].admin_up is True
    assert w.latest[b].carrier is False

    # Deleting one end deletes the pair: both reported gone.
    idx = {n: w.latest[n].ifindex for n in (a, b)}
    netns.run(ns, "ip", "link", "del", a)
    w.until(both(state(a, exists=False), state(b, exists=False)))
    for name in (a, b):
        ev = w.latest[name]
        assert ev.ifindex == idx[name]
        assert (ev.admin_up, ev.carrier) == (False, False)


def test_snapshot_lists_lo_and_only_this_namespace(ns, mon):
    snap = mon.snapshot()
    assert set(snap) == {"lo"}          # not the host's links
    lo = snap["lo"]
    assert lo == LinkEvent(name="lo", ifindex=1, exists=True, admin_up=True,
                           carrier=True, mac="00:00:00:00:00:00", mtu=65536)
    # Why carrier is IFF_LOWER_UP and not operstate: lo passes traffic with
    # operstate UNKNOWN.
    oper = netns.run(ns, "cat", "/sys/class/net/lo/operstate").stdout.strip()
    assert oper == "unknown"

    a, b = veth_names()
    netns.run(ns, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
    snap = mon.snapshot()
    assert set(snap) == {"lo", a, b}
    assert all(ev.exists for ev in snap.values())
    # snapshot() superseded the queued creation events.
    assert mon.drain() == []


def test_drain_with_nothing_pending_returns_at_once(mon):
    for _ in range(3):
        t0 = time.perf_counter()
        got = mon.drain()
        elapsed = time.perf_counter() - t0
        assert got == [] and got.resync is False
        assert elapsed < 0.05, f"drain() took {elapsed * 1000:.1f} ms"


def test_rename_reports_old_name_gone(ns, mon):
    w = Watch(mon)
    a, b = veth_names()
    c = b[:-1] + "c"
    netns.run(ns, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
    w.until(state(b, exists=True))
    idx = w.latest[b].ifindex

    netns.run(ns, "ip", "link", "set", b, "name", c)
    evs = w.until(both(state(b, exists=False), state(c, exists=True)))
    assert w.latest[b].ifindex == idx and w.latest[c].ifindex == idx
    names = [(e.name, e.exists) for e in evs]
    assert names.index((b, False)) < names.index((c, True))
    assert a not in {e.name for e in evs if not e.exists}
    assert set(mon.snapshot()) == {"lo", a, c}


def test_current_namespace_by_entering_it(ns):
    # Default: the namespace of the creating thread, kept after it leaves.
    with netns.entered(ns):
        m = LinkMonitor()
    try:
        assert set(m.snapshot()) == {"lo"}
        w = Watch(m)
        a, b = veth_names()
        netns.run(ns, "ip", "link", "add", a, "type", "veth", "peer",
                  "name", b)
        w.until(both(state(a, exists=True), state(b, exists=True)))
    finally:
        m.close()
    assert m.closed


def test_tap_carrier_follows_an_attached_process(ns, mon):
    w = Watch(mon)
    tap = netns.unique("tp", 15)
    netns.run(ns, "ip", "tuntap", "add", "dev", tap, "mode", "tap")
    w.until(state(tap, exists=True))
    assert (w.latest[tap].admin_up, w.latest[tap].carrier) == (False, False)

    netns.run(ns, "ip", "link", "set", tap, "up")
    w.until(state(tap, admin_up=True))
    assert w.latest[tap].carrier is False       # nobody holds it open

    # /dev/net/tun binds to the namespace of the opening thread.
    with netns.entered(ns):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF,
                    struct.pack("16sH22x", tap.encode(), IFF_TAP | IFF_NO_PI))
        w.until(state(tap, carrier=True))
        assert w.latest[tap].admin_up and w.latest[tap].exists
    finally:
        os.close(fd)
    evs = w.until(state(tap, carrier=False))
    assert w.latest[tap].exists and w.latest[tap].admin_up   # persistent
    assert all(e.exists for e in evs)

    netns.run(ns, "ip", "link", "del", tap)
    w.until(state(tap, exists=False))


def test_bridge_port_leaving_is_not_a_deletion(ns, mon):
    # The bridge sends AF_BRIDGE RTM_DELLINK for a port that leaves it.
    w = Watch(mon)
    br = netns.unique("br", 15)
    a, b = veth_names()
    netns.run(ns, "ip", "link", "add", br, "type", "bridge")
    netns.run(ns, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
    netns.run(ns, "ip", "link", "set", a, "master", br)
    netns.run(ns, "ip", "link", "set", a, "nomaster")
    netns.run(ns, "ip", "link", "set", a, "mtu", "1400")   # a marker
    evs = w.until(state(a, mtu=1400))
    assert [e for e in evs if not e.exists] == []
    assert w.latest[a].exists and w.latest[br].exists


def test_overrun_returns_full_resync(ns, tmp_path):
    # A tiny receive buffer (the kernel raises it to its minimum, a couple
    # of messages) overflows while nobody drains.
    with LinkMonitor(netns=ns, rcvbuf=1) as m:
        a, b = veth_names()
        netns.run(ns, "ip", "link", "add", a, "type", "veth", "peer",
                  "name", b)
        before = m.snapshot()
        assert set(before) == {"lo", a, b}

        stems = [netns.unique("ov", 13) for _ in range(20)]
        batch = "".join(f"link add {s}a type veth peer name {s}b\n"
                        f"link set {s}a up\n" for s in stems)
        batch += f"link del {a}\n"
        path = tmp_path / "links.batch"
        path.write_text(batch)
        netns.run(ns, "ip", "-batch", str(path))

        got = m.drain()
        assert got.resync is True
        assert m.overruns == 1
        gone = {e.name for e in got if not e.exists}
        present = {e.name: e for e in got if e.exists}
        assert gone == {a, b}
        assert all(before[n].ifindex == e.ifindex
                   for n, e in ((e.name, e) for e in got if not e.exists))
        want = {"lo"} | {s + "a" for s in stems} | {s + "b" for s in stems}
        assert set(present) == want
        for s in stems:            # a end up, b end down: no carrier
            assert present[s + "a"].admin_up is True
            assert present[s + "a"].carrier is False
            assert present[s + "b"].admin_up is False
        # Gone events come first, then one event per existing link.
        flags = [e.exists for e in got]
        assert flags == sorted(flags)
        assert len(got) == len(gone) + len(want)

        # The resync consumed the backlog; the socket is usable again.
        nxt = m.drain()
        assert nxt.resync is False
        netns.run(ns, "ip", "link", "set", stems[0] + "b", "up")
        w = Watch(m)
        w.until(both(state(stems[0] + "a", carrier=True),
                     state(stems[0] + "b", carrier=True)))


def test_asyncio_add_reader(ns, mon):
    a, b = veth_names()

    async def main():
        loop = asyncio.get_running_loop()
        seen: list[LinkEvent] = []
        done = loop.create_future()

        def readable():
            for ev in mon.drain():
                seen.append(ev)
                if ev.name == a and ev.carrier and not done.done():
                    done.set_result(ev)

        loop.add_reader(mon.fileno(), readable)
        try:
            cmds = [("ip", "link", "add", a, "type", "veth", "peer",
                     "name", b),
                    ("ip", "link", "set", a, "up"),
                    ("ip", "link", "set", b, "up")]
            for cmd in cmds:
                proc = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", ns, *cmd)
                assert await proc.wait() == 0
            return await asyncio.wait_for(done, 5), seen
        finally:
            loop.remove_reader(mon.fileno())

    ev, seen = asyncio.run(main())
    assert ev.name == a and ev.admin_up and ev.carrier and ev.exists
    assert any(e.name == b and e.exists for e in seen)


def test_closed_monitor_refuses_use(ns):
    m = LinkMonitor(netns=ns)
    m.close()
    m.close()                           # idempotent
    with pytest.raises(ValueError):
        m.fileno()
    with pytest.raises(ValueError):
        m.drain()


def test_missing_namespace_raises():
    with pytest.raises(FileNotFoundError):
        LinkMonitor(netns=netns.unique("nonexist"))
