"""Netlink link monitor: follows netdevs by rtnetlink events, not by polling.

Design note
-----------

*Why events, not polling.*  A port's netdev can vanish and come back at any
time (a VM or container restarts, a veth peer is deleted, a tap loses its
process).  Polling every port's flags every N seconds either wastes work or
reports the change N seconds late, and it misses flaps that fit between two
polls.  The kernel already broadcasts every change of a link to the
RTNLGRP_LINK multicast group (RTM_NEWLINK / RTM_DELLINK, each message carrying
the link's *complete* current state), so we subscribe once and the asyncio
loop watches one file descriptor with ``loop.add_reader(mon.fileno(), ...)``;
the reader calls :meth:`LinkMonitor.drain`.  Because every message is full
state and the kernel queues them in order, applying the stream in order
always converges on the current state; nothing needs to be diffed.

*What "carrier" means.*  ``carrier`` is ``IFF_LOWER_UP`` from ``ifi_flags``.
The kernel sets that flag only when the device is running (admin up) *and*
the driver reports carrier (``netif_carrier_ok``), so ``carrier`` implies
``admin_up``.  We do not use ``IFLA_OPERSTATE == UP``: drivers that do no
RFC 2863 operstate handling report ``UNKNOWN`` while passing traffic fine
(``lo`` is the everyday example), and operstate adds states we do not want
(DORMANT) on top of the same carrier bit.  What the carrier bit follows, as
checked on this project's kernel (6.x) by tests/integration/test_linkmon.py:

* veth: carrier on both ends exactly when both ends are admin up.  Setting
  one end up while its peer is down gives ``admin_up=True, carrier=False``
  (``ip`` shows NO-CARRIER, operstate LOWERLAYERDOWN); bringing the peer up
  raises carrier on both; taking either end down drops carrier on the other.
* tap (``ip tuntap add``, i.e. a persistent tap): carrier follows whether a
  process holds the device open (attached with TUNSETIFF).  Admin up with
  nobody attached is ``carrier=False``; attaching raises it; closing the last
  file descriptor drops it again, while the link itself stays (persistent).
* lo: ``carrier=True`` once up, although its operstate is UNKNOWN.

*Overrun.*  If the daemon falls behind, the kernel drops notifications and
the next ``recv`` fails once with ``ENOBUFS``; after that we cannot know
what we missed.  :meth:`LinkMonitor.drain` then discards whatever is still
queued (it predates the loss), dumps all links (RTM_GETLINK) and returns a
full resync: a :class:`LinkEvents` list with ``resync=True`` holding one
``exists=True`` event per existing link, preceded by ``exists=False`` events
for the links this monitor had reported that are no longer there (or whose
ifindex now carries another name).  The caller must in any case treat every
name absent from a resync as gone.  Discarding before dumping matters: a
queued message older than the dump, applied after it, could undo a change
whose own notification was lost.  The receive buffer is enlarged (1 MiB by
default, ``SO_RCVBUFFORCE`` when privileged) so that this stays rare.

*Renames.*  A rename arrives as RTM_NEWLINK with a known ifindex and a new
name.  The monitor tracks ifindex -> name and turns it into an
``exists=False`` event for the old name followed by the event for the new
name, so consumers keyed by name need no special case.

*Namespaces.*  A netlink socket belongs to the network namespace of the
thread that created it, for its whole life.  ``LinkMonitor()`` watches the
caller's current namespace; ``LinkMonitor(netns="name")`` opens its sockets
from a short-lived helper thread that first does setns(2) into
``/run/netns/name`` (or a given path), so the caller's own thread - typically
the asyncio loop's - never changes namespace, not even briefly.

Only ``AF_UNSPEC`` link messages are used: the bridge driver also sends
``AF_BRIDGE`` RTM_NEWLINK/RTM_DELLINK to the same group when a port joins or
leaves a Linux bridge, and such an RTM_DELLINK does not mean the netdev went
away.  Dumps run on a second, unsubscribed socket opened together with the
monitor socket (hence in the same namespace), so dump replies never
interleave with notifications.

Messages are decoded by rtnl_link.py (the header, ``ifinfomsg`` and three
attributes: pyroute2's marshal did it, but importing pyroute2 was most of
the daemon's start-up); the sockets themselves are plain
``socket.AF_NETLINK`` sockets so that non-blocking reads and ``ENOBUFS``
are under our control.
"""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from dataclasses import dataclass

from vswitch import rtnl_link
from vswitch.rtnl_link import (AF_UNSPEC, IFF_LOWER_UP, IFF_UP, NLM_F_DUMP_INTR, NLMSG_DONE,
                               NLMSG_ERROR, RTM_DELLINK, RTM_NEWLINK)

__all__ = ["LinkEvent", "LinkEvents", "LinkMonitor"]

RTMGRP_LINK = 0x1
SO_RCVBUFFORCE = 33
CLONE_NEWNET = 0x40000000

_RECV_SIZE = 1 << 16      # one notification, or one dump datagram (<= 32 KiB)
_MAX_READS = 512          # datagrams per drain(); more stay for the next call
_MAX_DISCARD = 100_000    # bound on the pre-resync discard loop
_DUMP_TRIES = 5           # NLM_F_DUMP_INTR retries


@dataclass(frozen=True)
class LinkEvent:
    """The state of one link as reported by one message (or dump entry).

    ``exists=False`` events (deletion, the old name of a renamed link, or a
    link missing from a resync) always carry ``admin_up=False`` and
    ``carrier=False``.
    """
    name: str
    ifindex: int
    exists: bool
    admin_up: bool
    carrier: bool
    mac: str | None
    mtu: int | None


class LinkEvents(list):
    """What :meth:`LinkMonitor.drain` returns: a list of :class:`LinkEvent`.

    ``resync`` is True when the list is a full resync after an overrun: every
    existing link is in it, and any name the caller knows that is not in it
    (with ``exists=True``) is gone.
    """
    resync: bool = False

    def __init__(self, events=(), resync: bool = False):
        super().__init__(events)
        self.resync = resync


def _gone(name: str, ifindex: int, mac: str | None = None,
          mtu: int | None = None) -> LinkEvent:
    return LinkEvent(name=name, ifindex=ifindex, exists=False, admin_up=False,
                     carrier=False, mac=mac, mtu=mtu)


def _netns_path(netns: str) -> str:
    return netns if "/" in netns else f"/run/netns/{netns}"


class LinkMonitor:
    """Non-blocking rtnetlink link monitor for one network namespace.

    Typical use from the daemon::

        mon = LinkMonitor()
        state = mon.snapshot()                     # name -> LinkEvent
        loop.add_reader(mon.fileno(), on_links)    # on_links calls mon.drain()

    Create it before taking the snapshot so no change falls between the two.
    Not thread-safe: call it from one thread (the event loop).
    """

    def __init__(self, netns: str | None = None, rcvbuf: int = 1 << 20,
                 dump_timeout: float = 5.0):
        self._sock: socket.socket | None = None
        self._dump: socket.socket | None = None
        self._dump_timeout = dump_timeout
        self._rcvbuf = rcvbuf
        self._seq = 0
        self._names: dict[int, str] = {}      # ifindex -> name, as reported
        self.overruns = 0                     # ENOBUFS seen (resyncs done)
        if netns is None:
            self._open()
        else:
            self._open_in(_netns_path(netns))

    # -- opening -------------------------------------------------------

    def _open(self) -> None:
        mon = socket.socket(socket.AF_NETLINK,
                            socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                            socket.NETLINK_ROUTE)
        try:
            try:
                mon.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self._rcvbuf)
            except PermissionError:
                mon.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                               self._rcvbuf)
            mon.bind((0, RTMGRP_LINK))
            mon.setblocking(False)
            dump = socket.socket(socket.AF_NETLINK,
                                 socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                 socket.NETLINK_ROUTE)
        except BaseException:
            mon.close()
            raise
        try:
            dump.bind((0, 0))
            dump.settimeout(self._dump_timeout)
        except BaseException:
            mon.close()
            dump.close()
            raise
        self._sock, self._dump = mon, dump

    def _open_in(self, path: str) -> None:
        # setns(2) with CLONE_NEWNET changes only the calling thread, so a
        # throwaway thread enters the namespace, opens both sockets (which
        # stay bound to it) and ends; the caller's thread is never moved.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        failure: list[BaseException] = []

        def body():
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({path}): {os.strerror(err)}")
                self._open()
            except BaseException as exc:      # re-raised in the caller
                failure.append(exc)

        try:
            t = threading.Thread(target=body, name="linkmon-setns")
            t.start()
            t.join()
        finally:
            os.close(fd)
        if failure:
            raise failure[0]

    # -- public API ----------------------------------------------------

    def fileno(self) -> int:
        """The subscribed socket's fd, for loop.add_reader / select."""
        if self._sock is None:
            raise ValueError("LinkMonitor is closed")
        return self._sock.fileno()

    def drain(self) -> LinkEvents:
        """Read every pending notification without blocking.

        Returns [] at once when nothing is pending.  Reads at most
        _MAX_READS datagrams per call so that a storm cannot keep it
        spinning; the fd stays readable and the loop calls again.  After an
        overrun (ENOBUFS) it returns a full resync instead (``.resync``).
        """
        sock = self._require()
        out = LinkEvents()
        for _ in range(_MAX_READS):
            try:
                data, (pid, _groups) = sock.recvfrom(_RECV_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1
                return self._resync_events()
            if pid != 0:                # only the kernel speaks for links
                continue
            for msg in rtnl_link.parse(data):
                out.extend(self._apply(msg))
        return out

    def snapshot(self) -> dict[str, LinkEvent]:
        """All current links of the namespace (RTM_GETLINK dump), by name.

        This is a resync: notifications queued before the dump are
        discarded (the dump supersedes them) and the ifindex -> name table is
        rebuilt from it, so treat the result as the complete state.
        """
        self._require()
        self._discard_pending()
        events = self._dump_links()
        self._names = {ev.ifindex: ev.name for ev in events}
        return {ev.name: ev for ev in events}

    def close(self) -> None:
        for s in (self._sock, self._dump):
            if s is not None:
                s.close()
        self._sock = self._dump = None

    @property
    def closed(self) -> bool:
        return self._sock is None

    def __enter__(self) -> LinkMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- internals -----------------------------------------------------

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise ValueError("LinkMonitor is closed")
        return self._sock

    def _apply(self, msg) -> list[LinkEvent]:
        """Turn one notification into events and update ifindex -> name."""
        mtype = msg.type
        if mtype not in (RTM_NEWLINK, RTM_DELLINK):
            return []
        if msg.malformed:
            return []                   # undecodable; the next one is full
        if msg.family != AF_UNSPEC:
            return []                   # AF_BRIDGE port (un)enslavement
        ifindex = msg.index
        name = msg.name
        old = self._names.get(ifindex)
        if mtype == RTM_DELLINK:
            self._names.pop(ifindex, None)
            name = name or old
            if name is None:
                return []
            out = [] if old is None or old == name else [_gone(old, ifindex)]
            out.append(_gone(name, ifindex, msg.mac, msg.mtu))
            return out
        if name is None:
            return []
        self._names[ifindex] = name
        ev = self._event(msg, name)
        if old is not None and old != name:      # renamed
            return [_gone(old, ifindex, ev.mac, ev.mtu), ev]
        return [ev]

    @staticmethod
    def _event(msg: rtnl_link.RtnlMessage, name: str) -> LinkEvent:
        return LinkEvent(
            name=name,
            ifindex=msg.index,
            exists=True,
            admin_up=bool(msg.flags & IFF_UP),
            # IFF_LOWER_UP = running and driver carrier (see module notes).
            carrier=bool(msg.flags & IFF_LOWER_UP),
            mac=msg.mac,
            mtu=msg.mtu,
        )

    def _discard_pending(self) -> None:
        """Drop queued notifications: a dump taken afterwards supersedes
        them.  A repeated ENOBUFS here is harmless for the same reason."""
        sock = self._require()
        for _ in range(_MAX_DISCARD):
            try:
                sock.recv(_RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise

    def _resync_events(self) -> LinkEvents:
        self._discard_pending()
        events = self._dump_links()
        now = {ev.ifindex: ev.name for ev in events}
        gone = [_gone(name, ifindex) for ifindex, name in self._names.items()
                if now.get(ifindex) != name]
        self._names = now
        return LinkEvents(gone + events, resync=True)

    def _dump_links(self) -> list[LinkEvent]:
        for _ in range(_DUMP_TRIES):
            events, interrupted = self._dump_once()
            if not interrupted:
                return events
        return events                   # still changing; events will follow

    def _dump_once(self) -> tuple[list[LinkEvent], bool]:
        dump = self._dump
        assert dump is not None
        self._seq = (self._seq % 0x7FFFFFFF) + 1
        seq = self._seq
        dump.send(rtnl_link.getlink_dump_request(seq))
        events: list[LinkEvent] = []
        interrupted = False
        while True:
            data, _anc, flags, _addr = dump.recvmsg(_RECV_SIZE)
            if flags & socket.MSG_TRUNC:
                raise OSError(errno.EMSGSIZE, "netlink dump datagram truncated")
            for msg in rtnl_link.parse(data):
                if msg.seq != seq:
                    continue            # left over from an abandoned dump
                if msg.nl_flags & NLM_F_DUMP_INTR:
                    interrupted = True
                mtype = msg.type
                if mtype == NLMSG_DONE:
                    return events, interrupted
                if mtype == NLMSG_ERROR:
                    if msg.error:
                        raise OSError(msg.error, f"RTM_GETLINK dump: {os.strerror(msg.error)}")
                    continue
                if mtype == RTM_NEWLINK and not msg.malformed and msg.family == AF_UNSPEC:
                    name = msg.name
                    if name is not None:
                        events.append(self._event(msg, name))
