"""One OpenFlow connection: negotiation, framing, probes, role, async config.

Design note.  Both sides send hello at once; the version is the highest one
both allow (the version bitmap when the peer sends one, else the lower of the
two hello versions, which must be one we allow — otherwise HELLO_FAILED/
INCOMPATIBLE and close).  After that every message is decoded and either
answered here (echo, role, async config) or handed to the bridge's OFSwitch
synchronously, in arrival order, so a barrier reply is sent only after every
earlier message took effect.  Malformed or unsupported messages get the
spec's error and the connection stays up; only a broken stream (length < 8)
or a failed negotiation closes it.  A ReplyStream (a flow dump) is written
one reply at a time, draining and yielding to the event loop between two;
the connection reads its next message only after the last one.

Controllers ("primary" connections: the bridge's controller targets) get
the inactivity probe: after `probe_interval` of silence an echo request, and
after a second one without any message the connection is dropped.  Service
connections (the bridge's mgmt socket, e.g. ovs-ofctl) get no probes and
no asynchronous messages unless they ask with set-async.
"""
import asyncio
import logging

from vswitch.ofproto.ofp import OFPError, decode, encode, error_reply, split_messages
from vswitch.ofproto.ofp import messages as m
from vswitch.ofproto.ofp.flow_stats_wire import ReplyStream
from vswitch.ofproto.ofp.constants import (OFPCR_ROLE_EQUAL, OFPCR_ROLE_MASTER, OFPCR_ROLE_NOCHANGE,
                                           OFPCR_ROLE_SLAVE)

log = logging.getLogger("vswitch.ofconn")

# async masks (master/equal, slave): packet-in reasons, port-status reasons,
# flow-removed reasons — the defaults of OF1.3 section 7.3.10 as OVS sets them.
DEFAULT_ASYNC = {"packet_in": (0x3, 0x0), "port_status": (0x7, 0x7), "flow_removed": (0xF, 0x0)}
NO_ASYNC = {"packet_in": (0, 0), "port_status": (0, 0), "flow_removed": (0, 0)}
HELLO_TIMEOUT = 5.0  # seconds a new connection has to send its hello
TO_CONTROLLER = (m.FeaturesReply, m.GetConfigReply, m.PacketIn, m.FlowRemoved, m.PortStatus,
                 m.MultipartReply, m.BarrierReply, m.RoleReply, m.GetAsyncReply, m.QueueGetConfigReply)
MODIFYING = (m.FlowMod, m.GroupMod, m.MeterMod, m.PortMod, m.TableMod, m.PacketOut, m.SetAsync)
READ_CHUNK = 65536  # bytes read per turn: the per-connection receive budget


class OFConnection:
    def __init__(self, mgr, reader, writer, name, primary):
        self.mgr, self.reader, self.writer = mgr, reader, writer
        self.name, self.primary = name, primary
        self.version = None
        self.role = OFPCR_ROLE_EQUAL
        self.async_masks = dict(DEFAULT_ASYNC if primary else NO_ASYNC)
        self.closed = False
        self.error = None  # the OSError that ended the connection, if one did
        self.stream = None  # (ReplyStream, xid) being written; later messages wait for it

    # ------------------------------------------------------------ sending
    def send(self, msg):
        if self.closed:
            return
        try:
            self.writer.write(encode(msg))
        except OFPError as err:          # e.g. a 1.3-only structure asked over 1.0
            self.send_raw(error_reply(err, self.version, msg.xid))
        except (ConnectionError, RuntimeError):
            self.closed = True

    def send_raw(self, data):
        if not self.closed:
            try:
                self.writer.write(data)
            except (ConnectionError, RuntimeError):
                self.closed = True

    def wants(self, kind, reason):
        """Does this connection receive an async message of `kind` for `reason`?"""
        if self.version is None:
            return False
        mask = self.async_masks[kind][1 if self.role == OFPCR_ROLE_SLAVE else 0]
        return bool(mask >> reason & 1)

    # ------------------------------------------------------------ the loop
    async def run(self):
        versions = self.mgr.switch.versions()
        self.send(m.Hello(versions=tuple(versions), version=max(versions)))
        buf = b""
        probed = False
        try:
            while not self.closed:
                if self.version is None:
                    # Until the hello: a peer that connects and says nothing
                    # must not hold a connection slot.
                    timeout = HELLO_TIMEOUT
                else:
                    timeout = self.mgr.switch.probe_interval if self.primary else None
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_CHUNK), timeout)
                except asyncio.TimeoutError:
                    if self.version is None:
                        self.mgr.log_refusal(f"{self.name}: no hello within {HELLO_TIMEOUT:g} s, disconnecting")
                        return
                    if probed:
                        log.warning("%s: no answer to the inactivity probe, disconnecting", self.name)
                        return
                    probed = True
                    self.send(m.EchoRequest(version=self.version))
                    continue
                if not data:
                    return
                probed = False
                buf += data
                try:
                    raws, buf = split_messages(buf)
                except OFPError as err:      # unrecoverable framing
                    self.send_raw(error_reply(err, self.version or 4, 0))
                    return
                for raw in raws:
                    if not self.handle_raw(raw):
                        return
                    if self.stream is not None:
                        await self.write_stream()
                await self.writer.drain()
                # The receive budget: one READ_CHUNK per turn of the event
                # loop.  A read with data already buffered does not yield, so
                # a peer that keeps the socket full would otherwise keep
                # every other connection (and vsctl) waiting.  A short read
                # emptied the buffer: the next read waits (yields) anyway,
                # and a request/reply peer (ovs-ofctl's flow-mod + barrier)
                # is not charged one more loop turn per message.
                if len(data) >= READ_CHUNK:
                    await asyncio.sleep(0)
        except (ConnectionError, OSError) as exc:   # ssl.SSLError too: e.g. the peer refused our certificate
            self.error = exc
            return
        finally:
            self.close()

    def close(self):
        self.closed = True
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 — already gone
            pass
        self.mgr.disconnected(self)

    # ------------------------------------------------------------ messages
    def handle_raw(self, raw):
        """False ends the connection."""
        try:
            msg = decode(raw)
        except OFPError as err:
            if self.version is None:
                return self._hello_failed(err.version, "first message is not a valid hello")
            self.send_raw(error_reply(err, self.version))
            return True
        if self.version is None:
            return self._negotiate(msg)
        try:
            if msg.version != self.version:
                raise OFPError("BAD_REQUEST", "BAD_VERSION", data=raw[:64],
                               detail=f"version {msg.version} after negotiating {self.version}")
            replies = self.dispatch(msg)
            if isinstance(replies, ReplyStream):
                self.stream = (replies, msg.xid)
                return True
            for reply in replies:
                self.send(reply)
        except OFPError as err:
            err.data = err.data or raw[:64]
            self.send_raw(error_reply(err, self.version, msg.xid))
        return True

    async def write_stream(self):
        """Writes a long reply (a flow dump) one message at a time, waiting
        for the socket to take each and yielding to the event loop between
        two, so other connections, vsctl and the slow path run while a big
        table is dumped.  Messages after the request wait (arrival order)."""
        replies, xid = self.stream
        self.stream = None
        try:
            for data in replies:
                self.send_raw(data)
                if self.closed:
                    return
                await self.writer.drain()
                await asyncio.sleep(0)
        except OFPError as err:          # an entry this version cannot carry
            self.send_raw(error_reply(err, self.version, xid))

    def _negotiate(self, msg):
        ours = self.mgr.switch.versions()
        if not isinstance(msg, m.Hello):
            return self._hello_failed(msg.version, "expected hello")
        if msg.versions:
            common = set(ours) & set(msg.versions)
            version = max(common) if common else None
        else:
            version = min(msg.version, max(ours))
            version = version if version in ours else None
        if version is None:
            return self._hello_failed(min(msg.version, max(ours)),
                                      f"peer offers {msg.versions or msg.version}, we allow {ours}")
        self.version = version
        log.info("%s: negotiated OpenFlow %s", self.name, {1: "1.0", 4: "1.3"}[version])
        self.mgr.connected(self)
        return True

    def _hello_failed(self, version, why):
        log.warning("%s: hello failed: %s", self.name, why)
        version = version if version in (1, 4) else 4
        self.send_raw(error_reply(OFPError("HELLO_FAILED", "INCOMPATIBLE", data=why.encode()[:64]),
                                  version, 0))
        return False

    def dispatch(self, msg):
        now = self.mgr.clock()
        if isinstance(msg, m.EchoRequest):
            return [m.EchoReply(data=msg.data, version=msg.version, xid=msg.xid)]
        if isinstance(msg, (m.EchoReply, m.Hello)):
            return []
        if isinstance(msg, m.Error):
            log.info("%s: error from peer: type %d code %d", self.name, msg.type, msg.code)
            return []
        if isinstance(msg, TO_CONTROLLER):
            raise OFPError("BAD_REQUEST", "BAD_TYPE", detail=f"{type(msg).__name__} is switch-to-controller")
        if isinstance(msg, m.RoleRequest):
            return [self._role(msg)]
        if isinstance(msg, m.GetAsyncRequest):
            a = self.async_masks
            return [m.GetAsyncReply(a["packet_in"], a["port_status"], a["flow_removed"],
                                    version=msg.version, xid=msg.xid)]
        if isinstance(msg, m.SetAsync):
            self.async_masks = {"packet_in": msg.packet_in_mask, "port_status": msg.port_status_mask,
                                "flow_removed": msg.flow_removed_mask}
            return []
        if self.role == OFPCR_ROLE_SLAVE and isinstance(msg, MODIFYING):
            raise OFPError("BAD_REQUEST", "IS_SLAVE")
        return self.mgr.switch.handle(msg, now)

    def _role(self, msg):
        if msg.role != OFPCR_ROLE_NOCHANGE:
            if msg.role in (OFPCR_ROLE_MASTER, OFPCR_ROLE_SLAVE):
                self.mgr.check_generation(msg.generation_id)
            self.role = msg.role
            if msg.role == OFPCR_ROLE_MASTER:
                self.mgr.demote_others(self)
        return m.RoleReply(self.role, self.mgr.generation_id or 0, version=msg.version, xid=msg.xid)
