"""One OpenFlow connection: negotiation, framing, probes, role, async config.

Design note.  A connection is an asyncio Protocol: the transport hands each
read to `data_received`, which splits the complete messages off the buffer
and handles them right there, in arrival order, every handler being
synchronous (OFSwitch.handle) — no stream reader, no task wake-up and no
future per message, which cost about as much as decoding a flow-mod.  The
replies (and asynchronous messages raised meanwhile, e.g. a flow-removed
caused by a delete) are collected and written with one transport.write at
the end of the read, in order, so a barrier reply leaves after every
earlier message took effect and after everything those messages caused —
except the table work of an add that OFSwitch defers, which nothing can
observe and which runs right after that write (ofswitch.py's note).

It is a BufferedProtocol: the transport reads into one preallocated
READ_SIZE buffer (recv_into) and the bytes read are copied out.  A plain
Protocol gets `sock.recv(transport.max_size)`, 256 KiB in asyncio, and
allocating and shrinking that bytes object costs 8 us per read here
(median, 24 us mean; a 64 KiB recv_into and copy 0.7 us:
bench/of_recv_size.py), paid per rule when ovs-ofctl sends one flow-mod
and barrier per round trip.

Both sides send hello at once; the version is the highest one both allow
(the version bitmap when the peer sends one, else the lower of the two hello
versions, which must be one we allow — otherwise HELLO_FAILED/INCOMPATIBLE
and close).  After that every message is decoded and either answered here
(echo, role, async config) or handed to the bridge's OFSwitch.  Malformed or
unsupported messages get the spec's error and the connection stays up; only
a broken stream (length < 8) or a failed negotiation closes it.

Fairness and back-pressure: at most READ_CHUNK bytes of messages are handled
per turn of the event loop; the rest waits for the next turn with reading
paused (a peer that keeps the socket full cannot starve other connections
or vsctl).  While the transport's write buffer is above its high-water mark
(a peer that does not read its replies) reading is paused too.

A ReplyStream (a flow dump) is written one reply per loop turn, and only
while the transport takes it (flow control: a peer that does not read stops
the encoding); reading is paused meanwhile, so the messages after the
request are handled after its last reply (arrival order).

Controllers ("primary" connections: the bridge's controller targets) get
the inactivity probe: after `probe_interval` of silence an echo request, and
after a second one without any message the connection is dropped.  A peer
must send its hello within HELLO_TIMEOUT.  Service connections (the bridge's
mgmt socket, e.g. ovs-ofctl) get no probes and no asynchronous messages
unless they ask with set-async.

A peer that streams requests paced by our replies (ovs-ofctl add-flows: one
flow-mod + barrier per round trip) is read by bounded busy-polling after
each reply instead of a sleep in the event loop per request
(conn/busy_poll.py: the bounds, and why).

Threads: everything here runs on the event loop thread; no locks.
"""
import asyncio
import logging
import os
import time

from vswitch.ofproto.conn.busy_poll import BusyPoller
from vswitch.datapath._datapath import ffi
from vswitch.ofproto.conn.front import SETTLE_DELAY_S
from vswitch.ofproto.ofp import OFPError, decode, encode, error_reply
from vswitch.ofproto.ofp import messages as m
from vswitch.ofproto.ofp.codec import HEADER_LEN, MESSAGE_LENGTH, TYPE_NUMBER
from vswitch.ofproto.ofp.flow_stats_wire import ReplyStream
from vswitch.ofproto.ofp.constants import (OFP_VERSION_13, OFPCR_ROLE_EQUAL, OFPCR_ROLE_MASTER, OFPCR_ROLE_NOCHANGE,
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
READ_CHUNK = 65536  # bytes of messages handled per event-loop turn: the per-connection budget
READ_SIZE = 65536   # bytes one read may return (the preallocated receive buffer)
DEFAULT_VERSION = 4  # the version errors are sent in before negotiation (OF1.3)
# version -> (a barrier request's type byte, its reply's): a barrier needs
# nothing but its place in the stream (ovs-ofctl sends one per flow-mod), so
# it is answered from its header without decoding.
BARRIER_TYPES = {v: (bytes([types[m.BarrierRequest]]), bytes([types[m.BarrierReply]]))
                 for v, types in TYPE_NUMBER.items()}


class OFConnection(asyncio.BufferedProtocol):
    """`listener`: the set of connections of the listener that accepted this
    one (counted against its caps when the connection is made), or None.
    `finished` is a future done when the connection is gone."""

    def __init__(self, mgr, name, primary, listener=None):
        self.mgr, self.name, self.primary, self.listener = mgr, name, primary, listener
        self.version = None
        self.role = OFPCR_ROLE_EQUAL
        self.async_masks = dict(DEFAULT_ASYNC if primary else NO_ASYNC)
        self.closed = False
        self.error = None  # the exception that ended the connection, if one did
        self.transport = None
        self._loop = asyncio.get_running_loop()   # kept: looking it up costs a getpid() per call
        self.finished = self._loop.create_future()
        self._buf = b""
        self._rbuf = memoryview(bytearray(READ_SIZE))   # what the transport reads into
        self._rbuf_c = ffi.from_buffer("uint8_t[]", self._rbuf)   # the same, for the front end's C loop
        self._out = None            # replies of the read being handled, written at its end
        self._paused = set()        # why reading is paused: "budget", "writes"
        self._last_heard = 0.0      # loop time of the last read
        self._probed = False
        self._timer = None
        self._barrier = None        # the version byte and BARRIER_TYPES once negotiated
        self._stream = None         # (iterator of a ReplyStream's replies, xid) being written
        self._pump_due = False      # a _pump_stream call is scheduled
        self._poller = None         # BusyPoller of a plain socket transport

    # ------------------------------------------------------------ transport events
    def connection_made(self, transport):
        self.transport = transport
        if not self.mgr.admit(self):
            self.closed = True
            transport.close()
            return
        self._poller = BusyPoller.for_transport(transport)
        versions = self.mgr.switch.versions()
        self.send(m.Hello(versions=tuple(versions), version=max(versions)))
        loop = self._loop
        self._last_heard = loop.time()
        self._timer = loop.call_later(HELLO_TIMEOUT, self._idle_check)

    def get_buffer(self, sizehint):
        return self._rbuf

    def buffer_updated(self, nbytes):
        poller = self._poller
        streaming = poller is not None and poller.streaming(time.perf_counter())
        self.data_received(bytes(self._rbuf[:nbytes]))
        if poller is not None:
            if streaming and self.may_poll():
                poller.run(self)
            else:
                poller.replied_at = time.perf_counter()

    def may_poll(self):
        """May the next bytes be read now (not closed, reading not paused)?"""
        return not self.closed and not self._paused and self._stream is None

    def data_received(self, data):
        if self.closed:
            return
        self._last_heard = self._loop.time()
        self._probed = False
        self._buf += data
        self._handle_buffered()

    def eof_received(self):
        return False   # the transport closes; connection_lost follows

    def read_failed(self, exc):
        """A read of our own (conn/busy_poll.py, the front end's C loop)
        failed with `exc`.  That read took the error from the socket, so the
        transport's next read sees only EOF: keep `exc` for connection_lost."""
        if self.error is None:
            self.error = exc

    def connection_lost(self, exc):
        if exc is not None and self.error is None:
            self.error = exc
        self.close()
        if not self.finished.done():
            self.finished.set_result(None)

    def pause_writing(self):
        self._pause("writes")

    def resume_writing(self):
        self._resume("writes")
        if self._stream is not None:
            self._schedule_pump()

    def _pause(self, why):
        if not self._paused and not self.closed:
            self.transport.pause_reading()
        self._paused.add(why)

    def _resume(self, why):
        self._paused.discard(why)
        if not self._paused and not self.closed:
            self.transport.resume_reading()

    # ------------------------------------------------------------ framing
    def _handle_buffered(self):
        """Handle the complete messages in the buffer, up to the budget."""
        buf, pos, budget = self._buf, 0, READ_CHUNK
        self._out = []
        sw = self.mgr.switch
        # the C front end (conn/front.py): OF1.3 only; its flow-mods' time
        front = sw.front if self.version == OFP_VERSION_13 else None
        now = self.mgr.clock() if front is not None else None
        stopped = None
        try:
            while len(buf) - pos >= HEADER_LEN and budget > 0:
                (length,) = MESSAGE_LENGTH.unpack_from(buf, pos + 2)
                if length < HEADER_LEN:      # unrecoverable framing
                    err = OFPError("BAD_REQUEST", "BAD_LEN", data=bytes(buf[pos:pos + 64]))
                    self.send_raw(error_reply(err, self.version or DEFAULT_VERSION, 0))
                    self._abort()
                    return
                if len(buf) - pos < length:
                    break
                if front is not None and pos != stopped and self._front_may_take():
                    taken, replies = front.scan(buf, pos, now)
                    if taken:
                        if replies is not None:
                            self._out.append(replies)
                        pos += taken
                        budget -= taken
                    stopped = pos              # where C stopped: the Python path's message
                    continue
                raw = buf[pos:pos + length]
                pos += length
                budget -= length
                if not self.handle_raw(raw):
                    self._abort()
                    return
                if self._stream is not None:     # later messages wait for the dump
                    break
            self._buf = buf[pos:]
            more = len(self._buf) >= HEADER_LEN and \
                MESSAGE_LENGTH.unpack_from(self._buf, 2)[0] <= len(self._buf)
        finally:
            self._flush()
            self._settle_read()
        if self._stream is not None and not self.closed:
            self._pause("stream")
            self._schedule_pump()
        elif more and not self.closed:
            # Over budget with whole messages left: the next loop turn.
            self._pause("budget")
            self._loop.call_soon(self._continue)

    def _settle_read(self):
        """After a read's replies were written: an add deferred past them
        (ofswitch.py), the front end's records once they fill a batch, else
        soon (conn/front.py)."""
        sw = self.mgr.switch
        if sw.settle_read() and not sw.front.settle_due:
            sw.front.settle_due = True
            self._loop.call_later(SETTLE_DELAY_S, _settle_front, sw)

    def _front_may_take(self):
        """May the front end take this connection's messages now (OF1.3,
        not a slave, the front end on)?"""
        return self.version == OFP_VERSION_13 and self.role != OFPCR_ROLE_SLAVE and \
            self.mgr.switch.front.active()

    def front_ready(self):
        """May the front end's C loop read this connection now (it may take
        its messages, nothing buffered either way)?"""
        return not self._buf and not self.transport.get_write_buffer_size() and self._front_may_take()

    def front_pump(self, fd, window, budget):
        """Stream through the front end's C loop (conn/busy_poll.py calls
        it) -> (vs_of_front_pump's reason, reads, slowest gap in s)."""
        reason, unsent, rest, reads, gap, err = self.mgr.switch.front.pump(
            fd, self._rbuf_c, window, budget, self.mgr.clock())
        if err:
            self.read_failed(OSError(err, os.strerror(err)))
        if reads:
            self._last_heard = self._loop.time()
            self._probed = False
        if unsent is not None:
            self.transport.write(unsent)      # in order: nothing else was buffered
        if rest is not None:
            self.data_received(rest)          # handles, then _settle_read
        else:
            self._settle_read()
        return reason, reads, gap

    def _continue(self):
        self._resume("budget")
        if not self.closed:
            self._handle_buffered()

    def _schedule_pump(self):
        if not self._pump_due:
            self._pump_due = True
            self._loop.call_soon(self._pump_stream)

    def _pump_stream(self):
        """One reply of the stream per loop turn, while the transport takes
        them; resume_writing picks up after a pause.  At the end, reading
        resumes and what arrived meanwhile is handled."""
        self._pump_due = False
        if self.closed or self._stream is None or "writes" in self._paused:
            return
        replies, xid = self._stream
        try:
            data = next(replies, None)
        except OFPError as err:          # an entry this version cannot carry
            data = error_reply(err, self.version, xid)
            self._stream = (iter(()), xid)
        if data is not None:
            self.transport.write(data)
            self._schedule_pump()
            return
        self._stream = None
        self._resume("stream")
        self._continue()

    def _flush(self):
        out, self._out = self._out, None
        if out and not self.closed:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])

    def _abort(self):
        """Close after what was queued has been written."""
        self._flush()
        self.close()

    # ------------------------------------------------------------ probes
    def _idle_check(self):
        if self.closed:
            return
        loop = self._loop
        if self.version is None:
            self.mgr.log_refusal(f"{self.name}: no hello within {HELLO_TIMEOUT:g} s, disconnecting")
            self.close()
            return
        interval = self.mgr.switch.probe_interval if self.primary else None
        if not interval:
            self._timer = None   # service connection: no probes
            return
        idle = loop.time() - self._last_heard
        if idle >= interval:
            if self._probed:
                log.warning("%s: no answer to the inactivity probe, disconnecting", self.name)
                self.close()
                return
            self._probed = True
            self._last_heard = loop.time()   # the probe's answer is due within one more interval
            self.send(m.EchoRequest(version=self.version))
            idle = 0.0
        self._timer = loop.call_later(interval - idle, self._idle_check)

    def _negotiated(self):
        """After the hello: the probe timer for primary connections."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.primary and self.mgr.switch.probe_interval:
            loop = self._loop
            self._timer = loop.call_later(self.mgr.switch.probe_interval, self._idle_check)

    # ------------------------------------------------------------ sending
    def send(self, msg):
        if self.closed:
            return
        try:
            data = encode(msg)
        except OFPError as err:          # e.g. a 1.3-only structure asked over 1.0
            data = error_reply(err, self.version, msg.xid)
        self.send_raw(data)

    def send_raw(self, data):
        if self.closed:
            return
        if self._out is not None:
            self._out.append(data)
        else:
            self.transport.write(data)

    def wants(self, kind, reason):
        """Does this connection receive an async message of `kind` for `reason`?"""
        if self.version is None:
            return False
        mask = self.async_masks[kind][1 if self.role == OFPCR_ROLE_SLAVE else 0]
        return bool(mask >> reason & 1)

    def close(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._poller is not None:
            self._poller.close()        # (kept: its counters outlive the connection)
        already, self.closed = self.closed, True
        if self.transport is not None and not already:
            self.transport.close()      # after what is buffered has been written
        if self.listener is not None:
            self.listener.discard(self)
        self.mgr.disconnected(self)

    # ------------------------------------------------------------ messages
    def handle_raw(self, raw):
        """False ends the connection."""
        barrier = self._barrier
        if barrier is not None and len(raw) == HEADER_LEN and raw[:1] == barrier[0] \
                and raw[1:2] == barrier[1]:
            self.send_raw(raw[:1] + barrier[2] + raw[2:])
            return True
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
            if type(msg) is m.FlowMod:
                self.mgr.switch.learn_front(raw, msg)
            if isinstance(replies, ReplyStream):
                self._stream = (iter(replies), msg.xid)
                return True
            for reply in replies:
                self.send(reply)
        except OFPError as err:
            err.data = err.data or raw[:64]
            self.send_raw(error_reply(err, self.version, msg.xid))
        return True

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
        self._barrier = (bytes([version]), *BARRIER_TYPES[version])
        log.info("%s: negotiated OpenFlow %s", self.name, {1: "1.0", 4: "1.3"}[version])
        self._negotiated()
        self.mgr.connected(self)
        return True

    def _hello_failed(self, version, why):
        log.warning("%s: hello failed: %s", self.name, why)
        version = version if version in (1, 4) else DEFAULT_VERSION
        self.send_raw(error_reply(OFPError("HELLO_FAILED", "INCOMPATIBLE", data=why.encode()[:64]),
                                  version, 0))
        return False

    def dispatch(self, msg):
        now = self.mgr.clock()
        if type(msg) is m.FlowMod:       # the bulk of a controller's messages: straight on
            if self.role == OFPCR_ROLE_SLAVE:
                raise OFPError("BAD_REQUEST", "IS_SLAVE")
            return self.mgr.switch.handle(msg, now, defer=True)   # settled after _flush
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


def _settle_front(sw):
    """The front end's delayed apply (conn/front.py)."""
    sw.front.settle_due = False
    sw.settle_front()
