"""One bridge's OpenFlow state and the handling of controller requests.

Design note.  OFSwitch owns the bridge's flow, group and meter tables, its
datapath id, OpenFlow port list and switch config, and answers every request
message (connection-level ones — hello, echo, role, async config — are the
connection's: conn/ofconn.py).  `handle(msg)` returns the reply messages or
raises OFPError; the caller sends the error reply and the connection stays up.

It talks to the rest of the switch through `host` (the Switch):
  host.flush_bridge(name)          megaflows that may now be wrong
  host.revalidate_rules(name, changes)  the megaflows [(rule, added)] may change
  host.of_view(name, now)          a pipeline.PipelineView for xlate
  host.dp_execute(dp_in, frame, actions)
  host.port_stats(dp_port)         datapath counters
and to controllers through `self.notify(kind, msg)`, set by the connection
manager (kind: "packet_in", "flow_removed", "port_status").

A flow-stats request is answered with a ReplyStream (ofp/flow_stats_wire.py):
the rules are selected at once, their entries encoded reply by reply while
the connection writes them (conn/ofconn.py), so a dump of 100k rules never
sits in memory whole and other connections run between two replies.

Invalidation happens before the next message is read, so by the time a
barrier reply leaves, no packet is forwarded by a megaflow the tables no
longer justify.

An add may be applied just after the replies of the read it came in are
written, instead of before (`handle(..., defer=True)`, the connection's
path; then `settle()`): ovs-ofctl sends one flow-mod + barrier per round
trip, and the table work done after the barrier reply overlaps with the
peer preparing its next request (bench/OF_SCALE_RESULTS.md: 10 us of work
after the reply cost nothing in wall time, before it 25 us).  Nothing can
tell: the add is validated first (every error it can raise is raised before
the reply), it is deferred only when applying it can neither change the
pipeline choice nor any megaflow (its table is not empty, and no megaflow
of the bridge looked that table up: host.megaflows_use_table), and it is
applied before anything else reads the tables — the next message of the
same read (`handle` settles first) or, at the latest, right after the
connection's write, in the same event-loop callback.  ofctl_runtime and
other direct callers of flow_mod() never defer.  The connections' C front
end (conn/front.py) extends this over a batch: once the Python path has
deferred an add of a shape whose checks its bytes decide, further adds of
that shape into that table are decoded in C and wait as records; every
reader outside this class goes through the `tables` property, which applies
them first, and every settle() (any message through handle(), flow_mod(),
run(), configure()) also stops the front end until the Python path finds
again that an add may wait.  An add into a table with a flow limit
(Flow_Table, table_limits.py) is never deferred: it may fail with
TABLE_FULL or evict, so it is applied in order with its reply, and the
front end, taught only by deferred adds, never takes adds into such a
table (configure() settles, so a limit set later stops it too).  A flow-mod or rule expiry hands the rules it added,
modified or removed to host.revalidate_rules (only the megaflows they may
change go: switch.py, megaflow_index.py); a flow-mod that changes the
pipeline choice (mode()), and group-mods and meter-mods (rare, and a group's
or meter's rules are not indexed), flush the bridge.  A host without
revalidate_rules (test fakes) gets flush_bridge.  Which pipeline runs
(mode()), as OVS's fail-open:
  - no controller configured: OpenFlow once flows exist (or fail_mode secure),
    NORMAL before;
  - secure: always the OpenFlow tables (misses drop while no controller is
    connected);
  - standalone with a controller connected: the tables once it has sent a
    flow-mod since the controllers were last all gone (or at once when all
    connected controllers speak OF1.0, whose misses go to the controller);
    before that NORMAL, so a controller that connects and installs nothing
    blackholes nothing;
  - standalone with none connected: the tables for FAIL_OPEN_PROBES probe
    intervals after the last controller was lost (or the bridge started
    looking for one), then NORMAL ("fail-open"), until one connects again.
    run(now) (every second) makes that call.
"""
import itertools
import os
import struct

import vswitch
from vswitch.datapath import dpif
from vswitch.ofproto import pipeline
from vswitch.ofproto.conn.front import SETTLE_BATCH, FrontEnd, thaw_front_rules
from vswitch.ofproto.flow_table import DEFAULT_N_TABLES, FlowTables, GroupTable, MeterTable
from vswitch.ofproto.ofp import messages as m
from vswitch.ofproto.ofp import multipart as mp
from vswitch.ofproto.ofp.flow_mod_fast import is_cached_program
from vswitch.ofproto.ofp.flow_stats_wire import MAX_REPLY, FlowStatsWriter, ReplyStream
from vswitch.ofproto.ofp import OFPError, FIELDS
from vswitch.ofproto.ofp.constants import (
    OFP_NO_BUFFER, OFPCML_NO_BUFFER, OFPFC_ADD, OFPFF_CHECK_OVERLAP, OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPG_ALL,
    OFPM_ALL, OFPMBT_DROP, OFPMBT_DSCP_REMARK, OFPP_ANY, OFPP_CONTROLLER, OFPP_LOCAL, OFPP_MAX, OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY,
    OFPTT_ALL)

CAPABILITIES_13 = 1 | 2 | 4 | 8 | 0x40          # flow, table, port, group stats; queue stats
CAPABILITIES_10 = 1 | 2 | 4 | 0x40
ACTIONS_10 = 0xFFF                               # every OF1.0 action
PORT_FEATURES = (1 << 6) | (1 << 11)             # 10GB_FD, copper (as OVS reports taps)
PORT_SPEED_KBPS = 10_000_000
COOKIE_BASE = 1 << 24    # packet-in userspace cookies: 0x01xxxxxx (lower values: other modules)


OFPPS_LINK_DOWN = 1  # ofp_port_state: no physical link
OFPPS_LIVE = 4       # live for fast failover (OVS reports it on every up port)


FAIL_OPEN_PROBES = 3  # probe intervals without a controller before standalone fails open (OVS)


def read_mac(ifname):
    try:
        with open(f"/sys/class/net/{ifname}/address") as f:
            return int(f.read().strip().replace(":", ""), 16)
    except (OSError, ValueError):
        return 0


class OFSwitch:
    def __init__(self, name, host, n_tables=DEFAULT_N_TABLES):
        self.name, self.host = name, host
        self.groups, self.meters = GroupTable(), MeterTable()
        self._tables = FlowTables(n_tables, self.groups, self.meters)   # read through `tables`
        self.front = FrontEnd()       # the connections' C front end (conn/front.py)
        self.datapath_id = 0
        self.ports = {}               # OpenFlow port number -> m.Port
        self.dp_port = {}             # OpenFlow port number -> datapath port number
        self.flags, self.miss_send_len = 0, 128
        self.controllers, self.fail_mode, self.protocols = [], None, []
        self.probe_interval = 5.0
        self.lost_at = None  # when the controllers were last all gone (None: one is connected)
        self.fail_open = False  # standalone gave up on the controllers: NORMAL
        self.controller_programmed = False  # a flow-mod arrived since they were last all gone
        self.connected = {}           # connection id -> negotiated version (controllers only)
        self.notify = lambda kind, msg: None
        self._cookies, self._cookie_ids = {}, {}
        self._changes = []            # (rule, added) since the last revalidation
        self._checked_program = None  # the last decoder-kept instruction list that passed the checks
        self._deferred = None         # (FlowMod, now) of an add validated, not applied yet (module note)
        self._tables.on_change = lambda rule, added: self._changes.append((rule, added))

    # ------------------------------------------------------------ configuration
    def configure(self, row, local_mac, table_settings=None, now=0.0):
        """Bridge row -> settings; True if the pipeline choice may have changed.
        table_settings: {table id: table_limits.TableSettings} of its
        flow_tables; a lowered limit of an evicting table evicts at once."""
        other = row.get("other_config") or {}
        self.settle()
        before = self.mode()
        self._tables.limits.configure(table_settings or {})
        evicted = self._tables.evict_over_limit()
        if evicted:
            self._flow_removed(evicted, now)
            self._revalidate(before)
        self.controllers = list(row.get("controller") or [])
        self.fail_mode = row.get("fail_mode")
        self.protocols = list(row.get("protocols") or [])
        self.probe_interval = int(other.get("inactivity-probe", 5000)) / 1000
        dpid = other.get("datapath-id")
        try:
            self.datapath_id = int(dpid, 16) if dpid else (local_mac or _name_hash(self.name))
        except ValueError:
            self.datapath_id = local_mac or _name_hash(self.name)
        return before != self.mode()

    def versions(self):
        names = self.protocols or ["OpenFlow10", "OpenFlow13"]
        return sorted({1: 1, 4: 4}[v] for v in (
            {"OpenFlow10": 1, "OpenFlow13": 4}.get(n) for n in names) if v)

    def sync_ports(self, of_ports, link_down=frozenset()):
        """of_ports: {OpenFlow port: (name, datapath port)}; link_down: the
        OpenFlow ports without carrier.  PORT_STATUS for every change: a port
        added or deleted, or its state moving between LIVE and LINK_DOWN."""
        for no in set(self.ports) - set(of_ports):
            port = self.ports.pop(no)
            self.dp_port.pop(no, None)
            self.notify("port_status", m.PortStatus(OFPPR_DELETE, port))
        for no, (name, dp) in of_ports.items():
            state = OFPPS_LINK_DOWN if no in link_down else OFPPS_LIVE
            old = self.ports.get(no)
            self.dp_port[no] = dp
            if old is not None and old.name == name and old.state == state:
                continue
            port = m.Port(no, read_mac(name), name, curr=PORT_FEATURES, advertised=0,
                          supported=PORT_FEATURES, state=state, curr_speed=PORT_SPEED_KBPS,
                          max_speed=PORT_SPEED_KBPS,
                          config=old.config if old is not None and old.name == name else 0)
            self.ports[no], self.dp_port[no] = port, dp
            reason = OFPPR_MODIFY if old is not None and old.name == name else OFPPR_ADD
            self.notify("port_status", m.PortStatus(reason, port))

    # ------------------------------------------------------------ pipeline choice
    def controller_connected(self):
        return bool(self.connected)

    def mode(self):
        """"openflow" or "normal" (see the module note)."""
        if self.controllers:
            if self.fail_mode == "secure":
                return "openflow"
            if self.connected:
                # OF1.0 misses go to the controller: nothing is blackholed.
                return "openflow" if self.controller_programmed or self.miss_to_controller() else "normal"
            return "normal" if self.fail_open else "openflow"
        if self.fail_mode == "secure" or self._tables.rule_count.n or self.groups.groups:
            return "openflow"
        return "normal"

    def miss_to_controller(self):
        """OF1.0 table-miss sends a packet-in; OF1.3 drops.  A bridge whose
        connected controllers all speak 1.0 gets the 1.0 behaviour."""
        return bool(self.connected) and all(v == 1 for v in self.connected.values())

    def controller_cookie(self, reason, table_id, cookie, max_len):
        """A datapath userspace cookie standing for one packet-in shape."""
        shape = (reason, table_id, cookie, max_len)
        cid = self._cookie_ids.get(shape)
        if cid is None:
            cid = COOKIE_BASE + len(self._cookie_ids) + 1
            self._cookie_ids[shape], self._cookies[cid] = cid, shape
        return cid

    def packet_in(self, cookie, dp_in_port, frame):
        """An upcall of our userspace cookie -> a packet-in to the controllers."""
        shape = self._cookies.get(cookie)
        if shape is None:
            return False
        reason, table_id, rule_cookie, max_len = shape
        in_port = next((of for of, dp in self.dp_port.items() if dp == dp_in_port), dp_in_port)
        data = frame if max_len == OFPCML_NO_BUFFER else frame[:max_len]
        self.notify("packet_in", m.PacketIn(
            buffer_id=OFP_NO_BUFFER, total_len=len(frame), reason=reason,
            table_id=table_id if table_id is not None else 0, cookie=rule_cookie,
            match=_match(in_port=in_port), data=data))
        return True

    # ------------------------------------------------------------ timeouts
    def _update_fail_open(self, now):
        """Standalone's fail-open: NORMAL only after FAIL_OPEN_PROBES probe
        intervals without any controller connected."""
        before = self.mode()
        if self.connected or not self.controllers:
            self.lost_at, self.fail_open = None, False
        else:
            self.controller_programmed = False  # the next controller starts afresh
            if self.lost_at is None:
                self.lost_at = now
            self.fail_open = now - self.lost_at >= FAIL_OPEN_PROBES * self.probe_interval
        if self.mode() != before:
            self.host.flush_bridge(self.name)

    def run(self, now):
        """Fail-open; expire timed-out rules, flow-removed for those that asked."""
        self.settle()
        thaw_front_rules()
        self._update_fail_open(now)
        before = self.mode()
        expired = self._tables.expire(now)
        self._flow_removed(expired, now)
        self._revalidate(before)
        return expired

    def _revalidate(self, mode_before, flush=False):
        """The megaflows the rule changes since the last call may change
        (all of the bridge's if the pipeline choice changed or `flush`)."""
        changes, self._changes = self._changes, []
        revalidate = getattr(self.host, "revalidate_rules", None)
        if flush or self.mode() != mode_before or revalidate is None:
            if changes or flush or self.mode() != mode_before:
                self.host.flush_bridge(self.name)
        elif changes:
            revalidate(self.name, changes)

    def _flow_removed(self, removed, now):
        for rule, reason in removed:
            if rule.send_flow_removed:
                sec, nsec = rule.duration(now)
                self.notify("flow_removed", m.FlowRemoved(
                    cookie=rule.cookie, priority=rule.priority, reason=reason, table_id=rule.table_id,
                    duration_sec=sec, duration_nsec=nsec, idle_timeout=rule.idle_timeout,
                    hard_timeout=rule.hard_timeout, packet_count=rule.packet_count,
                    byte_count=rule.byte_count, match=rule.match))

    # ------------------------------------------------------------ requests
    def handle(self, msg, now, defer=False):
        """One request -> list of reply messages (version and xid copied).
        defer: an add may wait for settle(), which the caller runs right
        after writing the replies (module note)."""
        self.settle()
        if defer and type(msg) is m.FlowMod:
            self.flow_mod(msg, now, defer=True)
            return []
        handler = HANDLERS.get(type(msg))
        if handler is None:
            raise OFPError("BAD_REQUEST", "BAD_TYPE", detail=type(msg).__name__)
        replies = handler(self, msg, now) or []
        if isinstance(replies, ReplyStream):     # already in wire form, xid and version set
            return replies
        for r in replies:
            r.version, r.xid = msg.version, msg.xid
        return replies

    def _features(self, msg, now):
        v13 = msg.version == 4
        return [m.FeaturesReply(self.datapath_id, 0, self._tables.n_tables, 0,
                                CAPABILITIES_13 if v13 else CAPABILITIES_10,
                                0 if v13 else ACTIONS_10,
                                [] if v13 else self._ports_for(1))]

    def _ports_for(self, version):
        return [p for no, p in sorted(self.ports.items()) if version == 4 or no < 0xFF00 or no >= OFPP_MAX]

    def _get_config(self, msg, now):
        return [m.GetConfigReply(self.flags, self.miss_send_len)]

    def _set_config(self, msg, now):
        self.flags, self.miss_send_len = msg.flags & 3, msg.miss_send_len
        self.host.flush_bridge(self.name)

    def flow_mod(self, fm, now, defer=False):
        self.settle()
        before = self.mode()
        self.controller_programmed = True
        if fm.command in (OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT) and \
                fm.instructions is not self._checked_program:
            pipeline.check_instructions(fm.instructions, self._tables.n_tables)
            # The decoder returns the same (never mutated) list for a repeated
            # instruction section: checked once while it repeats.
            if is_cached_program(fm.instructions):
                self._checked_program = fm.instructions
        if defer and self._may_defer(fm, before):
            self._tables.check_add(fm)          # its errors now, before any reply
            self._deferred = (fm, now)
            return []
        try:
            removed = self._tables.flow_mod(fm, now)
        finally:
            self._revalidate(before)
        self._flow_removed(removed, now)
        if fm.buffer_id != OFP_NO_BUFFER and fm.command in (OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT):
            raise OFPError("BAD_REQUEST", "BUFFER_UNKNOWN", detail="this switch has no buffers")
        return removed

    def _may_defer(self, fm, mode_before):
        """Can applying this flow-mod wait until after the replies (module
        note)?  An add without check-overlap or a buffer, into a non-empty
        table no megaflow depends on, with the pipeline choice unchanged."""
        if fm.command != OFPFC_ADD or fm.flags & OFPFF_CHECK_OVERLAP or fm.buffer_id != OFP_NO_BUFFER \
                or fm.table_id >= self._tables.n_tables or not self._tables.tables[fm.table_id].count:
            return False
        # A limited table's adds may fail or evict: never deferred, so the C
        # front end is never taught them either (table_limits.py).
        if self._tables.limits.limited(fm.table_id):
            return False
        uses = getattr(self.host, "megaflows_use_table", None)
        return uses is not None and not uses(self.name, fm.table_id) and self.mode() == mode_before

    @property
    def tables(self):
        """The flow tables, for any reader outside OFSwitch: what waits is
        applied first (module note)."""
        self.settle()
        return self._tables

    def settle(self):
        """Someone is about to read or change the tables: apply the deferred
        add and the front end's records, and let the front end take no more
        adds until the Python path has checked that one may wait again
        (module note; conn/front.py)."""
        self.front.disable()
        if self._deferred is not None or self.front.n_pending:
            self._apply_waiting()

    def settle_read(self):
        """After a connection wrote a read's replies: apply the deferred add,
        and the front end's records once a batch is full.  -> the number of
        records still waiting (the connection applies them within
        conn/front.py's SETTLE_DELAY_S: settle_front)."""
        if self._deferred is not None or self.front.n_pending >= SETTLE_BATCH:
            self._apply_waiting(self.front.n_pending >= SETTLE_BATCH)
        return self.front.n_pending

    def settle_front(self):
        """Apply everything waiting, the front end staying on."""
        if self._deferred is not None or self.front.n_pending:
            self._apply_waiting()

    def learn_front(self, raw, fm):
        """`fm` (bytes `raw`) went through the Python path: if it was
        deferred, the front end may take its shape from now on."""
        if self._deferred is not None and self._deferred[0] is fm:
            self.front.learn(raw, fm, self._tables)

    def _apply_waiting(self, records=True):
        """The deferred add, then (records) the front end's records: the
        arrival order (a deferred add is only set with no record waiting)."""
        deferred, self._deferred = self._deferred, None
        before = self.mode()
        try:
            if deferred is not None:
                fm, now = deferred         # checked when deferred; an add removes nothing
                self._tables.flow_mod(fm, now)
            if records and self.front.n_pending:
                self.front.apply(self._tables)
        finally:
            self._revalidate(before)

    def _flow_mod(self, msg, now):
        self.flow_mod(msg, now)

    def group_mod(self, msg, now):
        for bucket in msg.buckets:
            pipeline.check_actions(bucket.actions)
        removed = self.groups.group_mod(msg, now, self._tables)
        self._flow_removed(removed, now)
        self._revalidate(None, flush=True)

    def meter_mod(self, msg, now):
        removed = self.meters.meter_mod(msg, now, self._tables)
        self._flow_removed(removed, now)
        self._revalidate(None, flush=True)

    def _port_mod(self, msg, now):
        port = self.ports.get(msg.port_no)
        if port is None:
            raise OFPError("PORT_MOD_FAILED", "BAD_PORT", detail=f"port {msg.port_no}")
        if msg.hw_addr != port.hw_addr:
            raise OFPError("PORT_MOD_FAILED", "BAD_HW_ADDR")
        config = (port.config & ~msg.mask) | (msg.config & msg.mask)
        if config == port.config:
            return
        # Enforced by xlate (PipelineView.port_config): cached flows go, and
        # controllers hear of it, as from OVS (PORT_STATUS, reason MODIFY).
        port.config = config
        self.host.flush_bridge(self.name)
        self.notify("port_status", m.PortStatus(OFPPR_MODIFY, port))

    def _table_mod(self, msg, now):
        if msg.table_id != OFPTT_ALL and msg.table_id >= self._tables.n_tables:
            raise OFPError("TABLE_MOD_FAILED", "BAD_TABLE")

    def _barrier(self, msg, now):
        return [m.BarrierReply()]   # every earlier message already took effect

    def _queue_config(self, msg, now):
        if msg.port not in self.ports and msg.port != OFPP_ANY:
            raise OFPError("QUEUE_OP_FAILED", "BAD_PORT")
        return [m.QueueGetConfigReply(msg.port)]

    def _experimenter(self, msg, now):
        raise OFPError("BAD_REQUEST", "BAD_EXPERIMENTER", detail=f"experimenter {msg.experimenter:#x}")

    def packet_out(self, msg, now):
        if msg.buffer_id != OFP_NO_BUFFER:
            raise OFPError("BAD_REQUEST", "BUFFER_UNKNOWN", detail="this switch has no buffers")
        if msg.in_port not in self.ports and msg.in_port not in (OFPP_CONTROLLER, OFPP_ANY, OFPP_LOCAL):
            raise OFPError("BAD_REQUEST", "BAD_PORT", detail=f"in_port {msg.in_port}")
        pipeline.check_actions(msg.actions, packet_out=True)
        dp_in = self.dp_port.get(msg.in_port, 0)
        key = dpif.parse_frame(msg.data, dp_in)
        if key is None:
            raise OFPError("BAD_REQUEST", "BAD_PACKET", detail="packet-out frame does not parse")
        key.pop("tcp_flags", None)
        view = self.host.of_view(self.name, now)
        result = pipeline.execute_actions(view, key, msg.actions, now, len(msg.data), bytes(msg.data))
        self.host.dp_execute(dp_in, msg.data, result.actions)
        return result

    def _packet_out(self, msg, now):
        self.packet_out(msg, now)

    def _multipart(self, msg, now):
        build = MULTIPART.get(msg.type)
        if build is None:
            raise OFPError("BAD_REQUEST", "BAD_MULTIPART", detail=f"multipart type {msg.type}")
        body = build(self, msg, now)
        return body if isinstance(body, ReplyStream) else _split_reply(msg, body)

    # ------------------------------------------------------------ multipart bodies
    def _mp_desc(self, msg, now):
        return mp.Desc("vswitch", "vswitch software switch", vswitch.__version__, "None",
                       f"{self.name} (pid {os.getpid()})")

    def _selected_rules(self, req):
        return self._tables.select(req.table_id, req.match, req.out_port, req.out_group,
                                  req.cookie, req.cookie_mask)

    def _mp_flow(self, msg, now):
        """A flow dump: the rules are selected now (a snapshot of references),
        their entries encoded reply by reply as the connection writes them
        (flow_stats_wire).  The first reply is built here, so a request that
        fails (e.g. a rule OF1.0 cannot express) in the common one-reply case
        gets its error instead of any reply."""
        replies = FlowStatsWriter(msg.version, now).replies(self._selected_rules(msg.body), msg.xid)
        return ReplyStream(itertools.chain([next(replies)], replies))

    def _mp_aggregate(self, msg, now):
        rules = self._selected_rules(msg.body)
        return mp.AggregateStats(sum(r.packet_count for r in rules), sum(r.byte_count for r in rules),
                                 len(rules))

    def _mp_table(self, msg, now):
        limits = self._tables.limits
        return [mp.TableStats(t, len(rules), c.lookup_count, c.matched_count, name=limits.name(t),
                              wildcards=0x3FFFFF, max_entries=limits.max_entries(t))
                for t, (rules, c) in enumerate(zip(self._tables.tables, self._tables.counters))]

    def _mp_port(self, msg, now):
        want = msg.body.port_no
        if want != OFPP_ANY and want not in self.ports:
            raise OFPError("BAD_REQUEST", "BAD_PORT", detail=f"port {want}")
        out = []
        for no in sorted(self.ports):
            if want in (OFPP_ANY, no):
                s = self.host.port_stats(self.dp_port[no]) or {}
                out.append(mp.PortStats(no, s.get("rx_packets", 0), s.get("tx_packets", 0),
                                        s.get("rx_bytes", 0), s.get("tx_bytes", 0),
                                        s.get("rx_dropped", 0), s.get("tx_dropped", 0),
                                        rx_errors=s.get("rx_malformed", 0)))
        return out

    def _mp_port_desc(self, msg, now):
        return self._ports_for(msg.version)

    def _mp_group(self, msg, now):
        gid = msg.body.group_id
        refs = {}
        for rule in self._tables.rules():
            for g in {a.group_id for a in rule.actions() if type(a).__name__ == "Group"}:
                refs[g] = refs.get(g, 0) + 1
        out = []
        for g in sorted(self.groups.groups.values(), key=lambda g: g.group_id):
            if gid in (OFPG_ALL, g.group_id):
                sec, nsec = _duration(g.created, now)
                out.append(mp.GroupStats(g.group_id, refs.get(g.group_id, 0), g.packet_count,
                                         g.byte_count, sec, nsec, [tuple(c) for c in g.bucket_counts]))
        return out

    def _mp_group_desc(self, msg, now):
        return [mp.GroupDesc(g.type, g.group_id, g.buckets)
                for g in sorted(self.groups.groups.values(), key=lambda g: g.group_id)]

    def _mp_group_features(self, msg, now):
        return mp.GroupFeatures(types=0xF, capabilities=0x3, max_groups=(65535,) * 4,
                                actions=(0x3FF8001,) * 4)

    def _meters_selected(self, msg):
        mid = msg.body.meter_id
        return [e for e in sorted(self.meters.meters.values(), key=lambda e: e.meter_id)
                if mid in (OFPM_ALL, e.meter_id)]

    def _mp_meter(self, msg, now):
        flows = {}
        for rule in self._tables.rules():
            if rule.meter_id() is not None:
                flows[rule.meter_id()] = flows.get(rule.meter_id(), 0) + 1
        out = []
        dp_stats = getattr(self.host, "meter_stats", lambda name, entry: None)
        for e in self._meters_selected(msg):
            # what the datapath metered (cached flows), plus what xlate did
            packets, n_bytes, bands = dp_stats(self.name, e) or (0, 0, [(0, 0)] * len(e.band_counts))
            out.append(mp.MeterStats(e.meter_id, flows.get(e.meter_id, 0), e.packet_in_count + packets,
                                     e.byte_in_count + n_bytes, *_duration(e.created, now),
                                     [(c[0] + b[0], c[1] + b[1]) for c, b in zip(e.band_counts, bands)]))
        return out

    def _mp_meter_config(self, msg, now):
        return [mp.MeterConfig(e.flags, e.meter_id, e.bands) for e in self._meters_selected(msg)]

    def _mp_meter_features(self, msg, now):
        return mp.MeterFeatures(max_meter=65536, band_types=1 << OFPMBT_DROP | 1 << OFPMBT_DSCP_REMARK,
                                capabilities=0xF, max_bands=8)

    def _mp_table_features(self, msg, now):
        if msg.body:
            raise OFPError("TABLE_FEATURES_FAILED", "EPERM", detail="tables cannot be reconfigured")
        limits = self._tables.limits
        return [mp.TableFeatures(t, limits.name(t), 2**64 - 1, 2**64 - 1, 0, limits.max_entries(t),
                                 _table_props(t, self._tables.n_tables))
                for t in range(self._tables.n_tables)]

    def _mp_queue(self, msg, now):
        return []

    def _mp_experimenter(self, msg, now):
        raise OFPError("BAD_REQUEST", "BAD_EXPERIMENTER")


def _duration(created, now):
    elapsed = max(0.0, now - created)
    return int(elapsed), int((elapsed - int(elapsed)) * 1e9)


def _name_hash(name):
    import zlib
    return 0x0000_0200_0000_0000 | zlib.crc32(name.encode())


def _match(**fields):
    from vswitch.ofproto.ofp import Match
    return Match.exact(**fields)


_INSTRUCTION_TYPES = (1, 2, 3, 4, 5, 6)
_ACTION_TYPES = (0, 17, 18, 22, 23, 24, 25)
_SET_FIELDS = ("eth_dst", "eth_src", "vlan_vid", "vlan_pcp", "ip_dscp", "ip_ecn", "ipv4_src",
               "ipv4_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "ipv6_src", "ipv6_dst")
_MATCH_FIELDS = [f for f in FIELDS.values() if f.name in pipeline.OXM_TO_KEY or f.name == "metadata"]


def _oxm_ids(fields, masked=False):
    from vswitch.ofproto.ofp.oxm import oxm_header
    return b"".join(struct.pack("!I", oxm_header(f, masked and f.maskable)) for f in fields)


def _table_props(table_id, n_tables):
    props = mp.TableFeatureProp
    inst = b"".join(struct.pack("!HH", t, 4) for t in _INSTRUCTION_TYPES)
    acts = b"".join(struct.pack("!HH", t, 4) for t in _ACTION_TYPES)
    settable = _oxm_ids([FIELDS[n] for n in _SET_FIELDS])
    return [props(0, inst), props(2, bytes(range(table_id + 1, n_tables))), props(4, acts),
            props(6, acts), props(8, _oxm_ids(_MATCH_FIELDS, masked=True)),
            props(10, _oxm_ids(_MATCH_FIELDS)), props(12, settable), props(14, settable)]


def _split_reply(msg, body):
    """One multipart reply, or several with REPLY_MORE when a list is large."""
    from vswitch.ofproto.ofp import encode
    if not isinstance(body, list):
        return [m.MultipartReply(msg.type, 0, body)]
    chunks, size = [[]], 0
    for entry in body:
        n = len(encode(m.MultipartReply(msg.type, 0, [entry], version=msg.version)))
        if chunks[-1] and size + n > MAX_REPLY:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += n
    return [m.MultipartReply(msg.type, mp.OFPMPF_REPLY_MORE if i + 1 < len(chunks) else 0, chunk)
            for i, chunk in enumerate(chunks)]


HANDLERS = {
    m.FeaturesRequest: OFSwitch._features, m.GetConfigRequest: OFSwitch._get_config,
    m.SetConfig: OFSwitch._set_config, m.FlowMod: OFSwitch._flow_mod,
    m.GroupMod: OFSwitch.group_mod, m.MeterMod: OFSwitch.meter_mod,
    m.PortMod: OFSwitch._port_mod, m.TableMod: OFSwitch._table_mod,
    m.PacketOut: OFSwitch._packet_out, m.MultipartRequest: OFSwitch._multipart,
    m.BarrierRequest: OFSwitch._barrier, m.QueueGetConfigRequest: OFSwitch._queue_config,
    m.ExperimenterMsg: OFSwitch._experimenter,
}
MULTIPART = {
    mp.OFPMP_DESC: OFSwitch._mp_desc, mp.OFPMP_FLOW: OFSwitch._mp_flow,
    mp.OFPMP_AGGREGATE: OFSwitch._mp_aggregate, mp.OFPMP_TABLE: OFSwitch._mp_table,
    mp.OFPMP_PORT_STATS: OFSwitch._mp_port, mp.OFPMP_PORT_DESC: OFSwitch._mp_port_desc,
    mp.OFPMP_GROUP: OFSwitch._mp_group, mp.OFPMP_GROUP_DESC: OFSwitch._mp_group_desc,
    mp.OFPMP_GROUP_FEATURES: OFSwitch._mp_group_features, mp.OFPMP_METER: OFSwitch._mp_meter,
    mp.OFPMP_METER_CONFIG: OFSwitch._mp_meter_config,
    mp.OFPMP_METER_FEATURES: OFSwitch._mp_meter_features,
    mp.OFPMP_TABLE_FEATURES: OFSwitch._mp_table_features, mp.OFPMP_QUEUE: OFSwitch._mp_queue,
    mp.OFPMP_EXPERIMENTER: OFSwitch._mp_experimenter,
}
