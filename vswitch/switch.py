"""The switch at run time: bridges and ports built from the configuration,
the upcall handler that fills the flow cache, and the revalidator.

Upcall: a miss comes up from C with its flow key; xlate (NORMAL) gives actions,
a mask and staleness tags; the megaflow is installed and the packet executed.
Revalidator (once a second): refreshes MAC learning from flows that saw
traffic (those packets never come to Python), ages out idle megaflows and
MAC entries, and retries interfaces that could not be opened.
Staleness: every megaflow that forwards to (or floods for) a destination MAC
carries the tag ("mac", vlan, mac); when that MAC is learned, moves or ages
out, exactly those megaflows are deleted.  Bridge features tag theirs too
(a bond's member, bucket, admission: bridge/bond.py).  OpenFlow megaflows
carry ("of_rule", seq) for every rule their translation used, and sit in the
bridge's ofproto/megaflow_index.py by the table lookups that made them: a
flow-mod deletes the megaflows of the rules it removed or modified and those
an added rule may change (revalidate_rules), not the whole bridge's.  A
configuration change
flushes all megaflows: it is rare and the cache refills from traffic in
milliseconds.

Bridge features (bridge/feature.py) first see every upcall: a frame one of
them claims (LACPDU, CCM) gets a megaflow that sends it to userspace with the
feature's cookie and is handed to the feature; every other megaflow carries
what the features looked at in its mask.  The daemon calls run_features() at
next_wakeup(), and link_changed() on netlink carrier events.

Traffic reports (MegaflowDelta, to the features' flow_stats: mirror and
bond counters, NetFlow records): each packet exactly once.  The revalidator
reports each megaflow's deltas; a megaflow that is deleted (invalidated,
idle, flushed) reports its last ones as it goes (the datapath returns its
final counters); a packet the slow path forwards reports itself, since it
never hits the megaflow it set up.  Datapath samples (sFlow, IPFIX) have
their own queue, drained after the misses.

The revalidator reads the datapath in chunks (dpif.flow_dump_active_chunks) and
handles each as it is read (revalidate_steps); the daemon runs one chunk
per turn of the event loop, so upcalls and OpenFlow are served in between.
Its first round, and the first after a flush, reads every megaflow; the
others read only what they must act on (dpif.flow_dump_active_chunks: the
datapath skips the rest in C): megaflows hit since the previous round began
(less REVALIDATE_SINCE_SLACK_NS), those whose kernel-tier traffic the walk
itself harvested, and the idle ones.  A quiet, not yet idle megaflow has
nothing to report, nothing to learn and nothing to expire, so skipping it
changes no outcome: 100k idle megaflows cost a C walk per second, not 100k
records in Python.  No periodic full pass is needed: a megaflow the switch
does not know (deleted otherwise) is skipped while quiet, but comes back,
and is deleted, as soon as it sees traffic or goes idle (max_idle at most);
until then it forwards by the actions it was installed with, as it did
before it was forgotten.  A megaflow never hit goes idle one round later
than by the slow path's clock at worst (the datapath stamps its install a
little after the upcall's clock reading).  Counters are cumulative, so a
hit the filter misses (a poll thread preempted for longer than the slack
between stamping and counting) is not lost: it is reported with the
megaflow's next hit, or its final counters when it expires.
The filtered dump's records (dpif.DumpedMegaflow) carry a megaflow's
identity and counters; its key and mask are decoded only when a feature
reads a report's (NetFlow), and only features that read reports are called,
so a round's CPU on the poll thread's CPU (issue 16; ovs-appctl upcall/show,
round_cpu.py) follows its active megaflows rather than fixed decoding.
"""
import copy
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from vswitch.bridge.bridge import Bridge, BridgeConfig, ClaimedFlow, PortConfig
from vswitch.bridge.feature import MegaflowDelta, earliest_wakeup
from vswitch.chunked_reply import ChunkedList
from vswitch.datapath import dpif, flowkey
from vswitch.interfaces import Interfaces
from vswitch.ofproto import normal, ofctl_runtime, pipeline
from vswitch.ofproto.megaflow_index import OFMegaflowIndex
from vswitch.ofproto.ofswitch import OFSwitch, read_mac
from vswitch.ofproto.ofp.constants import OFPP_LOCAL
from vswitch.ofproto.mac_learning import DEFAULT_AGING, DEFAULT_SIZE, MacTable
from vswitch.ofproto.meter_sync import DatapathMeters
from vswitch.ofproto.table_limits import settings_from_config

log = logging.getLogger("vswitch.switch")

# The filtered dump's `since` that selects every megaflow (the revalidator's
# full rounds): a last use (used_ns) is never below it.
EVERY_MEGAFLOW_NS = 0
MEGAFLOW_IDLE_SECONDS = 10  # OVS's other_config:max-idle default (10000 ms)
# Megaflows at most (OVS's other_config:flow-limit default).  At the limit a
# new flow is forwarded by the slow path without being cached, so a flood of
# new flows cannot grow memory or evict what established flows use; above
# three quarters of it idle megaflows expire after PRESSURE_IDLE_SECONDS, as
# OVS's revalidators shorten the idle time under pressure.
DEFAULT_FLOW_LIMIT = 200_000
PRESSURE_IDLE_SECONDS = 1
MAX_UPCALL_BATCHES = 16  # per wake-up, so the event loop stays responsive
# A filtered round asks for megaflows hit since the previous round began, less
# this: a poll thread stamps a batch's last use when the batch starts, a little
# before its counts land, so a hit stamped just before that start may not have
# been in the previous round's read of the megaflow.
REVALIDATE_SINCE_SLACK_NS = 10_000_000
NS_PER_S = 1_000_000_000


def _account(result, packets, nbytes, now):
    """Traffic of one megaflow (or one slow-path packet) counted to the
    OpenFlow rules, groups and buckets its translation went through."""
    for rule in result.rules:
        rule.account(packets, nbytes, now)
    for group in result.groups:
        group.packet_count += packets
        group.byte_count += nbytes
    for group, i in result.buckets:
        group.bucket_counts[i][0] += packets
        group.bucket_counts[i][1] += nbytes


@dataclass(slots=True)
class InstalledFlow:
    """What the switch remembers of one megaflow (one per cached flow, up to
    the flow limit: kept small, slots and no copies of the key)."""
    fid: bytes  # masked key then mask, packed as in C (flowkey.pack): its identity
    bridge: str
    tags: tuple
    learn: tuple | None  # (vlan, src mac, port name) to refresh on traffic
    last_packets: int = 0
    installed: float = 0.0
    last_bytes: int = 0
    of: object = None  # pipeline.OFXlateResult: the rules/groups its traffic is counted to
    reported: float = 0.0  # when its traffic was last reported to the bridge's features

    @property
    def key(self):
        return self.fid[:flowkey.PACKED_SIZE]

    @property
    def mask(self):
        return self.fid[flowkey.PACKED_SIZE:]


def _packed(key, mask, packed_key=b""):
    """A megaflow's masked key and mask laid out as C stores them: what xlate
    produced and what the datapath dumps (MegaflowStats.packed_*) compare equal.
    Their concatenation is the megaflow's identity in Switch.flows.  With the
    key as C laid it out (an upcall's), masking is one AND over the bytes."""
    packed_mask = flowkey.pack(mask)
    if packed_key:
        return flowkey.mask_packed(packed_key, packed_mask), packed_mask
    return flowkey.pack(flowkey.apply_mask(key, mask)), packed_mask


SHOW_NOUNS = {"cfm": "interface", "lacp": "bond"}  # what `vsctl KIND-show NAME` names


def _with_features(bridge, up, result, special_mask):
    """What the bridge's features add to a pipeline's translation: the fields
    their claims looked at (mask) and their actions (mirrors)."""
    _merge_masks(result.mask, special_mask)
    result.actions = bridge.xlate_actions(up.in_port, up.key, result.actions, result.mask, result.tags)


def _report_slow_path(bridge, up, result, now):
    """The packet of an upcall, forwarded by the slow path, counts as
    traffic of the megaflow it set up (it never hits it)."""
    bridge.flow_stats(MegaflowDelta(flowkey.apply_mask(up.key, result.mask), result.mask,
                                    set(result.tags), 1, len(up.frame), 0, now, now), now)


EXPORTER_TABLES = {"netflow": "NetFlow", "sflow": "sFlow", "ipfix": "IPFIX"}


def _exporter_rows(config):
    """What the bridges' exporters are configured from, to compare."""
    return ([(br["name"], [br.get(col) for col in EXPORTER_TABLES]) for br in config["Bridge"].values()],
            [config.get(table) for table in EXPORTER_TABLES.values()])


def _merge_masks(mask, extra):
    for name, bits in extra.items():
        mask[name] = mask.get(name, 0) | bits


class Switch:
    def __init__(self, datapath, clock=time.monotonic, flow_limit=DEFAULT_FLOW_LIMIT,
                 max_idle=MEGAFLOW_IDLE_SECONDS):
        self.dp = datapath
        self.flow_limit = flow_limit
        self.max_idle = max_idle  # seconds a megaflow may go unused (below the pressure mark)
        self.flows_not_cached = 0  # flow setups refused by the flow limit
        self.clock = clock
        self.bridges = {}
        self.interfaces = Interfaces(datapath)
        self.ifaces = self.interfaces.by_name  # name -> interfaces.Interface
        self.flows = {}  # flow id -> InstalledFlow
        self.tag_index = defaultdict(set)
        self.of_index = defaultdict(OFMegaflowIndex)  # bridge name -> its OpenFlow megaflows by lookup
        self.carriers = {}  # interface name -> carrier, from netlink events
        self.wake = lambda: None  # the daemon's: run_features is due earlier
        self.of = {}  # bridge name -> OFSwitch (OpenFlow state)
        self.dp_meters = DatapathMeters()  # OpenFlow meters -> C datapath meters
        self.config = None  # the configuration last applied
        # Datapath clock (ns) a filtered revalidation round may ask from:
        # None = the next round reads every megaflow (first round, flush).
        self._revalidated_since_ns = None
        self._flushes = 0  # a round that saw one began in a different cache

    # ------------------------------------------------------------ configuration
    def apply_config(self, config):
        if self.config is not None and _exporter_rows(config) != _exporter_rows(self.config):
            # An exporter that goes or changes still gets the traffic its
            # megaflows forwarded since the revalidator's last look.
            self._report_all()
        self.config = config
        changed = self.interfaces.reconcile(config)
        changed |= self._apply_bridges(config)
        if changed:
            self.flush_flows()

    def _apply_bridges(self, config):
        changed = False
        names = set()
        now = self.clock()
        for br in config["Bridge"].values():
            name = br["name"]
            names.add(name)
            other = br.get("other_config") or {}
            aging = int(other.get("mac-aging-time", DEFAULT_AGING))
            size = int(other.get("mac-table-size", DEFAULT_SIZE))
            bridge = self.bridges.get(name)
            if bridge is None:
                bridge = self.bridges[name] = Bridge(
                    name, MacTable(aging, size), interfaces=self.ifaces.get,
                    invalidate_tag=lambda tag, n=name: self.invalidate(n, tag),
                    flush_all=lambda n=name: self.flush_bridge(n), clock=self.clock,
                    wake=lambda: self.wake(), carriers=self.carriers,
                    netdevs=self.interfaces.netdev_info)
                self.of[name] = OFSwitch(name, self)
                changed = True
            elif (aging, size) != (bridge.macs.aging_time, bridge.macs.max_entries):
                bridge.macs.configure(aging, size)
                changed = True
            bridge.mac = self._bridge_mac(br)
            changed |= self.of[name].configure(br, read_mac(name),
                                               settings_from_config(br, config.get("Flow_Table", {})), now)
            ports = {}
            for port_uuid in br.get("ports", []):
                port = config["Port"].get(port_uuid)
                if port:
                    ifaces = (config["Interface"].get(u) for u in port.get("interfaces", []))
                    ports[port["name"]] = PortConfig(port, {i["name"]: i for i in ifaces if i})
            changed |= bridge.configure(BridgeConfig(br, ports, now, config))
            self._sync_of_ports(bridge)
        for name in set(self.bridges) - names:
            self.bridges.pop(name).close()
            del self.of[name]
            self.dp_meters.release_bridge(name)
            changed = True
        self.wake()
        return changed

    def _bridge_mac(self, br):
        """The bridge's MAC as OVS picks it (bridge_pick_local_hw_addr):
        other_config:hwaddr, else the lowest MAC of its other interfaces, else
        its internal interface's; so LACP's system id survives a restart."""
        hwaddr = (br.get("other_config") or {}).get("hwaddr")
        if hwaddr:
            return bytes.fromhex(hwaddr.replace(":", ""))
        macs = [i.mac for i in self.ifaces.values()
                if i.bridge == br["name"] and i.name != br["name"] and i.mac and any(i.mac)]
        return min(macs) if macs else read_mac(br["name"]).to_bytes(6, "big")

    def _of_ports(self, bridge):
        """{OpenFlow port: (name, datapath port)}: the bridge's own internal
        interface is OpenFlow's LOCAL port, the others keep their ofport."""
        return {(OFPP_LOCAL if name == bridge.name else self.ifaces[name].ofport): (name, dp)
                for dp, name in bridge.iface_names.items()}

    def _sync_of_ports(self, bridge):
        ofs = self.of.get(bridge.name)
        if ofs:
            of_ports = self._of_ports(bridge)
            ofs.sync_ports(of_ports, {no for no, (name, _) in of_ports.items()
                                      if not self.carriers.get(name, True)})

    def _report_all(self):
        """Reports every megaflow's traffic since the last look."""
        if self.flows:
            now, now_ns = self.clock(), dpif.now_ns()
            for stats in self.dp.flow_dump():
                info = self.flows.get(stats.packed_key + stats.packed_mask)
                if info is not None:
                    self._report(info, stats, now, now_ns)

    def close(self):
        self._report_all()  # the exporters' last records include the last packets
        for bridge in self.bridges.values():
            bridge.close()
        self.interfaces.close_all()

    # ------------------------------------------------------------ flow cache
    def flush_flows(self):
        """Deletes every megaflow, first reporting their last traffic."""
        self._report_all()
        self.dp.flow_flush()
        self._revalidated_since_ns = None
        self._flushes += 1
        self.flows.clear()
        self.tag_index.clear()
        self.of_index.clear()

    def _forget(self, fid):
        info = self.flows.pop(fid, None)
        if info:
            for tag in info.tags:
                self.tag_index[tag].discard(fid)
            if info.of is not None:
                self.of_index[info.bridge].discard(fid)
        return info

    def invalidate(self, bridge, tag):
        for fid in list(self.tag_index.pop((bridge,) + tag, ())):
            info = self._forget(fid)
            if info:
                self._delete(info)

    def _delete(self, info):
        """Deletes a forgotten megaflow from the datapath, reporting the
        traffic it saw since the last look (so no packet goes uncounted)."""
        stats = self.dp.flow_del_stats(info.key, info.mask)
        if stats is not None:
            self._report(info, stats, self.clock(), dpif.now_ns())

    def _report(self, info, stats, now, now_ns):
        """Hands a megaflow's traffic since the last look to its bridge's
        features and OpenFlow rules, and remembers where the counters stand."""
        if stats.packets > info.last_packets and info.bridge in self.bridges:
            last_seen = now - (now_ns - stats.used_ns) / 1e9 if stats.used_ns else now
            first_seen = min(max(info.reported, info.installed), last_seen)
            self.bridges[info.bridge].flow_stats(MegaflowDelta(
                None, None, {t[1:] for t in info.tags},
                stats.packets - info.last_packets, stats.bytes - info.last_bytes,
                stats.tcp_flags, first_seen, last_seen, record=stats), now)
            info.reported = now
        self._attribute(info, stats, now)

    def _learned(self, bridge, learned):
        """A MAC was learned or moved: the megaflows forwarding to it are
        stale, and so are those of any MAC evicted to make room."""
        self.invalidate(bridge.name, ("mac",) + tuple(learned))
        for vlan, mac in bridge.macs.take_evicted():
            self.invalidate(bridge.name, ("mac", vlan, mac))

    def _install(self, bridge_name, key, result, now, packed_key=b""):
        if len(self.flows) >= self.flow_limit:
            self.flows_not_cached += 1
            return
        packed_key, packed_mask = _packed(key, result.mask, packed_key)
        fid = packed_key + packed_mask
        self.dp.flow_put(packed_key, packed_mask, result.actions)
        learn = None
        src = key.get("dl_src", 0)
        in_port = self.bridges[bridge_name].ports.get(key.get("in_port"))
        if in_port and not flowkey.is_multicast_mac(src):
            vlan = getattr(result, "vlan", None)
            if vlan is not None:
                learn = (vlan, src, in_port.name)
        tags = {(bridge_name,) + t for t in result.tags}
        of_result = result if isinstance(result, pipeline.OFXlateResult) else None
        if of_result is not None:
            tags.update((bridge_name, "of_rule", rule.seq) for rule in of_result.rules)
        tags = tuple(tags)
        old = self._forget(fid)
        self.flows[fid] = InstalledFlow(fid, bridge_name, tags, learn,
                                        old.last_packets if old else 0, now,
                                        old.last_bytes if old else 0, of_result)
        for tag in tags:
            self.tag_index[tag].add(fid)
        if of_result is not None:
            self.of_index[bridge_name].add(fid, of_result.lookups)

    def bridge_of_ofport(self, ofport):
        for bridge in self.bridges.values():
            if ofport in bridge.iface_names:
                return bridge
        return None

    def handle_upcalls(self):
        for _ in range(MAX_UPCALL_BATCHES):
            upcalls = self.dp.recv_upcalls()
            for up in upcalls:
                self._handle_upcall(up)
            if len(upcalls) < dpif.UPCALL_BATCH:
                break
        self.handle_samples()

    def handle_samples(self):
        """Packets the datapath sampled (their own queue, drained after the
        misses) go to the feature whose cookie they carry (sFlow, IPFIX)."""
        now, bridges, got = self.clock(), {}, False
        for _ in range(MAX_UPCALL_BATCHES):
            samples = self.dp.recv_samples()
            for sample in samples:
                bridge = bridges.get(sample.in_port) or self.bridge_of_ofport(sample.in_port)
                if bridge is not None:
                    bridges[sample.in_port] = bridge
                    bridge.sampled(sample, now)
            got |= bool(samples)
            if len(samples) < dpif.SAMPLE_BATCH:
                break
        if got:
            self.wake()

    def _handle_upcall(self, up):
        now = self.clock()
        bridge = self.bridge_of_ofport(up.in_port)
        if bridge is None:
            return  # port just removed
        ofs = self.of.get(bridge.name)
        if up.cookie:
            if up.cookie in bridge.cookies:
                self._transmit(bridge.process_claimed(up.cookie, up.in_port, up.frame, now))
                self.wake()
            elif ofs:
                ofs.packet_in(up.cookie, up.in_port, up.frame)
            return
        cookie, special_mask = bridge.claim(up.in_port, up.key)
        if cookie is not None:
            # Claimed frames stay in the slow path: the megaflow brings the
            # next ones up with the feature's cookie.
            special_mask["in_port"] = flowkey.full_mask("in_port")
            self._install(bridge.name, up.key, ClaimedFlow([("userspace", cookie)], special_mask), now,
                          up.packed_key)
            self._transmit(bridge.process_claimed(cookie, up.in_port, up.frame, now))
            self.wake()
            return
        if ofs and ofs.mode() == "openflow":
            self._handle_openflow_upcall(bridge, up, now, special_mask)
            return
        result = normal.xlate(bridge.ports, bridge.macs, up.key, now, trace=False)
        _with_features(bridge, up, result, special_mask)
        if result.learned:
            self._learned(bridge, result.learned)
        self._install(bridge.name, up.key, result, now, up.packed_key)
        self.dp.execute(up.in_port, up.frame, result.actions, up.vnet)
        _report_slow_path(bridge, up, result, now)

    def _handle_openflow_upcall(self, bridge, up, now, special_mask):
        result = pipeline.xlate(self.of_view(bridge.name, now), up.key, now, len(up.frame), up.frame)
        _with_features(bridge, up, result, special_mask)
        if result.learned:
            self._learned(bridge, result.learned)
        if not result.slow_path:
            self._install(bridge.name, up.key, result, now, up.packed_key)
        if not result.dropped_by_meter:
            _account(result, 1, len(up.frame), now)
        self.dp.execute(up.in_port, up.frame, result.actions, up.vnet)
        _report_slow_path(bridge, up, result, now)

    # ------------------------------------------------------------ OpenFlow glue (OFSwitch's host)
    def of_view(self, name, now, macs=None):
        """What pipeline.xlate needs about bridge `name`; `macs` replaces the
        MAC table (a copy, for a trace that must not learn)."""
        bridge, ofs = self.bridges[name], self.of[name]
        table = macs or bridge.macs
        return pipeline.PipelineView(
            ofs.tables, ofs.groups, ofs.meters,
            {of: dp for of, (_, dp) in self._of_ports(bridge).items()},
            normal=lambda key: normal.xlate(bridge.ports, table, key, now),
            controller_cookie=ofs.controller_cookie if ofs.controllers or ofs.connected else None,
            miss_to_controller=ofs.miss_to_controller(), miss_send_len=ofs.miss_send_len,
            port_config={no: p.config for no, p in ofs.ports.items() if p.config},
            dp_meter=lambda meter_id: self.dp_meters.dp_id(name, ofs.meters, meter_id))

    def meter_stats(self, name, entry):
        """The datapath's counters of bridge `name`'s meter entry, or None."""
        return self.dp_meters.stats(name, entry)

    def flush_bridge(self, name):
        """Deletes bridge `name`'s megaflows, first reporting their last
        packets (features, OpenFlow rules)."""
        for fid, info in list(self.flows.items()):
            if info.bridge == name:
                self._forget(fid)
                self._delete(info)

    def megaflows_use_table(self, name, table_id):
        """Does a megaflow of bridge `name` depend on OpenFlow table
        `table_id` (OFSwitch defers an add only into a table none does)?"""
        index = self.of_index.get(name)
        return index is not None and index.uses_table(table_id)

    def revalidate_rules(self, name, changes):
        """OpenFlow rules of bridge `name` changed: [(rule, added)].  Deletes
        the megaflows that used a removed or modified rule (added False) and
        those an added rule may change; the others stay (module note)."""
        index = self.of_index.get(name)
        for rule, added in changes:
            if added:
                for fid in index.affected_by_add(rule) if index else ():
                    info = self._forget(fid)
                    if info:
                        self._delete(info)
            else:
                self.invalidate(name, ("of_rule", rule.seq))

    def dp_execute(self, in_port, frame, actions):
        self.dp.execute(in_port, frame, actions)

    def port_stats(self, dp_port):
        return self.dp.port_stats(dp_port)

    @staticmethod
    def _attribute(info, stats, now):
        """Counts the megaflow's traffic since the last look to its OpenFlow
        rules, and remembers where the counters stand."""
        if info.of is not None and stats.packets > info.last_packets:
            _account(info.of, stats.packets - info.last_packets, stats.bytes - info.last_bytes, now)
        info.last_packets, info.last_bytes = stats.packets, stats.bytes

    def revalidate(self):
        for _ in self.revalidate_steps():
            pass

    def revalidate_steps(self):
        """revalidate() one datapath dump chunk at a time: a generator that
        yields after each chunk, so the daemon lets upcalls, OpenFlow and vsctl
        run between two (100k megaflows are ~100 chunks, not one long stall).
        Each chunk is handled as soon as it is read; what changed between
        chunks is seen by its own path (upcall installs, invalidation)."""
        now = self.clock()
        now_ns = dpif.now_ns()
        flushes = self._flushes
        idle_limit = (PRESSURE_IDLE_SECONDS if len(self.flows) > self.flow_limit * 3 // 4
                      else self.max_idle)
        for chunk in self._revalidation_dump(now_ns, idle_limit):
            yield from self._revalidate_chunk(chunk, now, now_ns, idle_limit)
        if flushes == self._flushes:
            self._revalidated_since_ns = max(0, now_ns - REVALIDATE_SINCE_SLACK_NS)
        self._revalidate_rest(now)

    def _revalidation_dump(self, now_ns, idle_limit):
        """Every megaflow on the first round (and after a flush), else only
        those hit since the last round began or idle (see the module note).
        Both through the filtered dump, whose records cost less to read:
        "hit at or after EVERY_MEGAFLOW_NS" is every megaflow, as a
        never-hit one's last use reads 0."""
        since_ns = self._revalidated_since_ns
        if since_ns is None:
            return self.dp.flow_dump_active_chunks(EVERY_MEGAFLOW_NS, EVERY_MEGAFLOW_NS)
        return self.dp.flow_dump_active_chunks(
            since_ns, max(0, now_ns - int(idle_limit * NS_PER_S)))

    def _revalidate_chunk(self, chunk, now, now_ns, idle_limit):
        for stats in chunk:
            fid = stats.fid
            info = self.flows.get(fid)
            if info is None:
                self.dp.flow_del(stats.packed_key, stats.packed_mask)
                continue
            saw_traffic = stats.packets > info.last_packets
            self._report(info, stats, now, now_ns)
            last_use = stats.used_ns / 1e9 if stats.used_ns else info.installed
            if now_ns / 1e9 - last_use > idle_limit:
                self._forget(fid)
                self._delete(info)
                continue
            if saw_traffic:
                bridge = self.bridges.get(info.bridge)
                if info.learn and bridge:
                    vlan, mac, port = info.learn
                    if bridge.macs.learn(vlan, mac, port, now):
                        self._learned(bridge, (vlan, mac))
        yield

    def _revalidate_rest(self, now):
        for bridge in self.bridges.values():
            for vlan, mac in bridge.macs.expire(now):
                self.invalidate(bridge.name, ("mac", vlan, mac))
        for ofs in list(self.of.values()):
            ofs.run(now)
        self.wake()  # the exporters' caches took this round's deltas
        if not self.interfaces.following_links and self.interfaces.retry_failed():
            # An interface that came up late joins its bridge's ports.
            self._apply_bridges(self.config)
            self.flush_flows()

    # ------------------------------------------------------------ bridge features
    def _transmit(self, frames):
        for dp_port, frame in frames:
            self.dp.execute(0, frame, [("output", dp_port)])

    def run_features(self):
        now = self.clock()
        for bridge in list(self.bridges.values()):
            self._transmit(bridge.run(now))

    def next_wakeup(self):
        """When run_features is next due (switch clock), or None."""
        return earliest_wakeup(self.bridges.values())

    def link_event(self, ev):
        """A netlink link event (linkmon.LinkEvent): a port whose netdev went
        away is closed and one that came back reopened (interfaces.py), and
        the bridge's features and bonds hear of carrier changes at once."""
        ports_changed, carrier = self.interfaces.link_event(ev)
        if ports_changed and self.config is not None:
            self._apply_bridges(self.config)
            self.flush_flows()
        if carrier is not None:
            self.link_changed(*carrier)

    def link_changed(self, name, carrier):
        """A netdev's carrier changed: its bridge's features and bonds react
        at once, and OpenFlow controllers get a PORT_STATUS."""
        if self.carriers.get(name, True) == carrier:
            self.carriers[name] = carrier
            return
        self.carriers[name] = carrier
        iface = self.ifaces.get(name)
        bridge = self.bridges.get(iface.bridge) if iface else None
        if bridge is not None:
            self._transmit(bridge.link_changed(name, carrier, self.clock()))
            self._sync_of_ports(bridge)
            self.wake()

    def feature_show(self, kind, name=None):
        """`vsctl KIND-show [NAME]`: the show() of feature KIND of every bridge."""
        shown, found = [], name is None
        for bridge in self.bridges.values():
            try:
                shown += bridge.show(kind, name)
                found = True
            except KeyError:
                continue
        if not found:
            raise KeyError(f"no such {SHOW_NOUNS.get(kind, kind)} {name}")
        return shown

    def feature_column(self, table, column, name):
        """A read-only column a feature supplies (cfm_fault, lacp_current,
        Mirror statistics...): an interface's own bridge answers for it, any
        bridge for rows of other tables."""
        if table == "Interface":
            iface = self.ifaces.get(name)
            bridges = [self.bridges[iface.bridge]] if iface and iface.bridge in self.bridges else []
        else:
            bridges = list(self.bridges.values())
        for bridge in bridges:
            value = bridge.column(table, column, name)
            if value is not None:
                return value
        return None

    # ------------------------------------------------------------ runtime reads for vsctl
    def _bridge(self, name):
        bridge = self.bridges.get(name)
        if bridge is None:
            raise KeyError(f"no bridge named {name}")
        return bridge

    def fdb_show(self, br):
        return self._bridge(br).macs.dump(self.clock())

    def fdb_flush(self, br=None):
        for bridge in ([self._bridge(br)] if br else self.bridges.values()):
            bridge.macs.flush()
        self.flush_flows()

    def port_names(self):
        return self.interfaces.port_names()

    def dump_ports(self, br):
        self._bridge(br)
        rows = []
        for iface in sorted(self.ifaces.values(), key=lambda i: (i.ofport, i.name)):
            if iface.bridge != br:
                continue
            stats = self.interface_statistics(iface.name)
            rows.append({"port": iface.name, "ofport": iface.ofport, **{
                k: stats.get(k, 0) for k in ("rx_packets", "rx_bytes", "rx_dropped",
                                             "tx_packets", "tx_bytes", "tx_dropped")}})
        return rows

    def dp_flows(self):
        """vsctl dpctl-dump-flows: every megaflow as a dict, read from the
        datapath and converted one chunk at a time while the reply is
        written (chunked_reply.py), so 100k megaflows never hold the event
        loop for more than one chunk."""
        return ChunkedList(self._dp_flow_chunks(self.port_names()))

    def _dp_flow_chunks(self, names):
        for chunk in self.dp.flow_dump_chunks():
            now_ns = dpif.now_ns()  # per chunk: a later chunk is read later
            yield [{"match": flowkey.format_match(f.key, f.mask, names),
                    "actions": dpif.format_actions(f.actions, names),
                    "packets": f.packets, "bytes": f.bytes,
                    "used": round((now_ns - f.used_ns) / 1e9, 3) if f.used_ns else None}
                   for f in chunk]

    def interface_status(self, name):
        return self.interfaces.status(name)

    def interface_statistics(self, name):
        return self.interfaces.statistics(name)

    def interface_ofport(self, name):
        return self.interfaces.ofport(name)

    def netdev_column(self, table, column, name):
        """link_state, admin_state, link_resets, mtu, mac_in_use, ifindex."""
        return self.interfaces.column(column, name) if table == "Interface" else None

    # OpenFlow commands of vsctl (ovs-ofctl syntax): see ofproto/ofctl_runtime.py
    def _ofs(self, br):
        self._bridge(br)
        return self.of[br]

    def add_flows(self, br, lines):
        return ofctl_runtime.add_flows(self._ofs(br), lines, self.clock())

    def mod_flows(self, br, text, strict=False):
        return ofctl_runtime.mod_flows(self._ofs(br), text, strict, self.clock())

    def del_flows(self, br, text=None, strict=False):
        return ofctl_runtime.del_flows(self._ofs(br), text, strict, self.clock())

    def dump_flows(self, br, text=None):
        return ofctl_runtime.dump_flows(self._ofs(br), text, self.clock())

    def dump_tables(self, br):
        return ofctl_runtime.dump_tables(self._ofs(br))

    def add_group(self, br, text):
        return ofctl_runtime.add_group(self._ofs(br), text, self.clock())

    def dump_groups(self, br):
        return ofctl_runtime.dump_groups(self._ofs(br))

    def add_meter(self, br, text):
        return ofctl_runtime.add_meter(self._ofs(br), text, self.clock())

    def dump_meters(self, br):
        return ofctl_runtime.dump_meters(self._ofs(br))

    def trace(self, br, text):
        """`vsctl trace BR FLOW`: the upcall's xlate on a flow given in
        ovs-ofctl syntax, without installing anything or learning MACs."""
        bridge, ofs, now = self._bridge(br), self._ofs(br), self.clock()
        spec = ofctl_runtime.parse_flow_on(ofs, text, actions_required=False)
        macs = copy.deepcopy(bridge.macs)
        ports = {of: dp for of, (_, dp) in self._of_ports(bridge).items()}
        key = pipeline.match_to_key(spec.match, ports)
        if ofs.mode() == "openflow":
            result = pipeline.xlate(self.of_view(br, now, macs), key, now)
            pipeline_name = "OpenFlow tables"
        else:
            result = normal.xlate(bridge.ports, macs, key, now)
            pipeline_name = "NORMAL (no OpenFlow flows, or standalone without a connected controller)"
        names = self.port_names()
        return {"bridge": br, "flow": flowkey.format_match(key, {f: flowkey.full_mask(f) for f in key if key[f]}, names),
                "pipeline": pipeline_name, "trace": result.trace,
                "megaflow": flowkey.format_match(key, result.mask, names),
                "datapath_actions": dpif.format_actions(result.actions, names)}

    def pmd_stats(self):
        """Datapath totals plus one entry per poll thread, with the derived
        figures that say where the cycles go."""
        def derive(st):
            packets = st["packets"]
            st["cycles_per_packet"] = round(st["busy_cycles"] / packets, 1) if packets else None
            for stage in ("rx", "process", "tx"):  # only per-thread entries have these
                if f"{stage}_cycles" in st:
                    st[f"{stage}_cycles_per_packet"] = (
                        round(st[f"{stage}_cycles"] / packets, 1) if packets else None)
            st["packets_per_batch"] = round(packets / st["batches"], 2) if st["batches"] else None
            hits = st["emc_hits"] + st["megaflow_hits"]
            st["hit_rate"] = round(hits / (hits + st["misses"]), 4) if hits + st["misses"] else None
            busy = st["busy_ns"] + st["idle_ns"]
            st["busy_fraction"] = round(st["busy_ns"] / busy, 4) if busy else None
            return st
        total = derive(self.dp.stats())
        total["pmds"] = [derive(st) for st in self.dp.pmd_stats()]
        total["flow_limit"], total["flows_not_cached"] = self.flow_limit, self.flows_not_cached
        # Exact flows the kernel XDP tier forwards (afxdp options:xdp-offload).
        total["xdp_tier"] = dpif.xdp_offload_counts()
        return total
