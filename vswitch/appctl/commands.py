"""vswitchd's ovs-appctl commands, bound to the running daemon.

`make_server(daemon)` returns a UnixctlServer with OVS's command names,
usages, argument counts and error texts.  The daemon object gives `switch`
(vswitch/switch.py), `connmgrs` (bridge -> OpenFlow ConnManager) and `stop`
(the asyncio.Event SIGTERM sets).  Each command reads live state from the
Switch, as the vsctl equivalents do (fdb-show, bond-show, lacp-show,
cfm-show, dpctl-dump-flows, pmd-stats-show, trace, vlog-set/list), and
prints it as ovs-vswitchd does (render.py).
"""
import asyncio
import logging
import os
import re

import vswitch
from vswitch import vlog
from vswitch.appctl import render
from vswitch.appctl.coverage import RUN_INTERVAL, Coverage
from vswitch.appctl.protocol import Reply, UnixctlError, UnixctlServer
from vswitch.chunked_reply import ChunkedText
from vswitch.cfm import show as cfm_show
from vswitch.config import bond_show
from vswitch.datapath import dpif
from vswitch.lacp import show as lacp_show

VERSION = f"vswitchd (vswitch) {vswitch.__version__}"
INT_MAX = 2 ** 31 - 1
DESTINATIONS = ("console", "syslog", "file")
DP_NAMES = (render.DATAPATH_NAME, render.DATAPATH_NAME.split("@")[1])


def _numa_of(cpu):
    """The NUMA node of a CPU (sysfs), or None."""
    try:
        for entry in os.listdir(f"/sys/devices/system/cpu/cpu{cpu}"):
            if entry.startswith("node") and entry[4:].isdigit():
                return int(entry[4:])
    except OSError:
        pass
    return None


def parse_vlog_spec(spec, known_modules):
    """One `ovs-appctl vlog/set` spec -> "MODULE:LEVEL" for vlog.set_levels.

    OVS's words (module, destination, level, joined by ':' or spaces, ANY
    for any of them); there is one level per module here, so a destination
    is accepted and applies to all.  Errors are OVS's texts."""
    module = level = destination = None
    words = [w for w in re.split(r"[:\s]+", spec) if w]
    if words and words[0] in ("PATTERN", "FACILITY"):
        raise UnixctlError(f"vlog/set {words[0]}: not supported by vswitchd (it keeps one log format)")
    for word in words:
        lower = word.lower()
        if lower == "any":
            continue
        if lower in DESTINATIONS:
            if destination is not None:
                raise UnixctlError("cannot specify multiple destinations")
            destination = lower
        elif lower in vlog.LEVELS:
            if level is not None:
                raise UnixctlError("cannot specify multiple levels")
            level = lower
        elif word in known_modules:
            if module is not None:
                raise UnixctlError("cannot specify multiple modules")
            module = word
        else:
            raise UnixctlError(f'no destination, level, or module "{word}"')
    return f"{module or 'ANY'}:{level or 'dbg'}"


class Commands:
    def __init__(self, daemon):
        self.daemon = daemon
        self.server = UnixctlServer(VERSION)
        self.coverage = Coverage(self._coverage_totals)
        self._pmd_zero = {}  # (thread index, cpu) -> counters at pmd-stats-clear
        s = self.server
        s.register("help", "", 0, 0, lambda args: s.list_commands())
        s.register("fdb/show", "bridge", 1, 1, self.fdb_show)
        s.register("fdb/flush", "[bridge]", 0, 1, self.fdb_flush)
        s.register("bond/show", "[port]", 0, 1, self._feature("bond", bond_show.render, "no such bond"))
        s.register("lacp/show", "[port]", 0, 1, self._feature("lacp", lacp_show.render, "no such lacp object"))
        s.register("cfm/show", "[interface]", 0, 1, self._feature("cfm", cfm_show.render, "no such CFM object"))
        s.register("dpif/show", "", 0, 0, self.dpif_show)
        s.register("dpctl/dump-flows", "[-m] [--names | --no-names] [dp]", 0, 3, self.dump_flows)
        s.register("dpif-netdev/pmd-stats-show", "[-pmd core] [dp]", 0, 3, self.pmd_stats_show)
        s.register("dpif-netdev/pmd-stats-clear", "[-pmd core] [dp]", 0, 3, self.pmd_stats_clear)
        s.register("ofproto/trace", "bridge br_flow", 2, 2, self.trace)
        s.register("coverage/show", "", 0, 0, lambda args: self.coverage.show())
        s.register("coverage/read-counter", "COUNTER", 1, 1, self.read_counter)
        s.register("vlog/list", "", 0, 0, lambda args: render.format_vlog_list(vlog.list_levels()))
        s.register("vlog/set", "[spec...]", 0, INT_MAX, self.vlog_set)
        s.register("vlog/reopen", "", 0, 0, self.vlog_reopen)
        s.register("memory/show", "", 0, 0, self.memory_show)
        s.register("upcall/show", "", 0, 0, self.upcall_show)
        s.register("exit", "[--cleanup]", 0, 1, self.exit)

    @property
    def switch(self):
        return self.daemon.switch

    # -- MAC learning -------------------------------------------------------------------
    def _port_numbers(self, bridge):
        """{port name: its OpenFlow number as OVS prints it}: LOCAL for the
        bridge's own, a bond's lowest member number (OVS's "a port")."""
        numbers = {}
        for iface in self.switch.ifaces.values():
            if iface.bridge != bridge or not iface.open:
                continue
            number = "LOCAL" if iface.name == bridge else iface.ofport
            old = numbers.get(iface.port)
            if old is None or (old != "LOCAL" and number != "LOCAL" and number < old):
                numbers[iface.port] = number
        return numbers

    def fdb_show(self, args):
        try:
            entries = self.switch.fdb_show(args[0])
        except KeyError:
            raise UnixctlError("no such bridge") from None
        numbers = self._port_numbers(args[0])
        entries = sorted(entries, key=lambda e: -e["age"])  # least recently seen first, as OVS's LRU
        return render.format_fdb([{**e, "port": numbers.get(e["port"], e["port"])} for e in entries])

    def fdb_flush(self, args):
        try:
            self.switch.fdb_flush(args[0] if args else None)
        except KeyError:
            raise UnixctlError("no such bridge") from None
        return "table successfully flushed"

    # -- bonds, LACP, CFM: the renderers vsctl's KIND-show use ----------------------------
    def _feature(self, kind, render_one, missing):
        def show(args):
            try:
                shows = self.switch.feature_show(kind, args[0] if args else None)
            except KeyError:
                raise UnixctlError(missing) from None
            return "".join(render_one(s) for s in shows)
        return show

    # -- datapath ------------------------------------------------------------------------
    def dpif_show(self, args):
        st = self.switch.dp.stats()
        bridges = {}
        for name, bridge in self.switch.bridges.items():
            ports = bridges[name] = []
            for dp_port, iface_name in bridge.iface_names.items():
                iface = self.switch.ifaces.get(iface_name)
                if iface is not None:
                    ports.append((iface_name, iface.ofport, dp_port, iface.type or "system"))
        return render.format_dpif_show(st["emc_hits"] + st["megaflow_hits"], st["misses"], bridges)

    @staticmethod
    def _check_dp(name, error):
        if name not in DP_NAMES:
            raise UnixctlError(error)

    def dump_flows(self, args):
        """The megaflows as text, one datapath dump chunk read and formatted
        per piece of the reply, which is written one piece per turn of the
        event loop (chunked_reply.ChunkedText): 100k megaflows take seconds
        to format, and upcalls and OpenFlow connections are served in
        between (dpif.flow_dump_chunks)."""
        names = False
        for arg in args:
            if arg in ("-m", "--more", "--names"):
                names = True
            elif arg == "--no-names":
                names = False
            elif arg.startswith("-") or "=" in arg:
                raise UnixctlError(f'dpctl/dump-flows: option "{arg}" is not supported by vswitchd')
            else:
                self._check_dp(arg, f"datapath {arg} not found (vswitchd has one: {render.DATAPATH_NAME})")
        port_names = self.switch.port_names() if names else None
        return ChunkedText(render.format_dp_flows(chunk, dpif.now_ns(), port_names)
                           for chunk in self.switch.dp.flow_dump_chunks())

    def _pmds(self, args):
        """[(key, cpu, counters)] of the poll threads the arguments select."""
        core, rest = None, list(args)
        while rest:
            arg = rest.pop(0)
            if arg == "-pmd":
                if not rest or not rest[0].isdigit():
                    raise UnixctlError("Invalid pmd")
                core = int(rest.pop(0))
            else:
                self._check_dp(arg, "please specify an existing datapath")
        return [((i, st["cpu"]), st) for i, st in enumerate(self.switch.dp.pmd_stats())
                if core is None or st["cpu"] == core]

    def pmd_stats_show(self, args):
        shown = []
        for key, st in self._pmds(args):
            zero = self._pmd_zero.get(key, {})
            counters = {name: max(st[name] - zero.get(name, 0), 0) for name in render.PMD_COUNTERS}
            numa = _numa_of(st["cpu"]) if st["cpu"] >= 0 else None
            shown.append((render.pmd_header(st, numa), counters))
        return render.format_pmd_stats(shown)

    def pmd_stats_clear(self, args):
        """The fast path keeps its counters: clearing is a baseline kept here
        that pmd-stats-show subtracts, as OVS's own clear is (vsctl
        pmd-stats-show and the metrics still count from the start)."""
        for key, st in self._pmds(args):
            self._pmd_zero[key] = {name: st[name] for name in render.PMD_COUNTERS}
        return ""

    # -- ofproto/trace -------------------------------------------------------------------
    def trace(self, args):
        bridge, flow = args
        if bridge not in self.switch.bridges:
            raise UnixctlError(f"{bridge}: unknown bridge")
        try:
            result = self.switch.trace(bridge, flow)
        except KeyError:
            raise UnixctlError(f"{bridge}: unknown bridge") from None
        except ValueError as exc:
            raise UnixctlError(f"Bad openflow flow syntax: {flow}: {exc}") from None
        ofports = {name: "LOCAL" if name == bridge else num
                   for name, num in ((i.name, i.ofport) for i in self.switch.ifaces.values()
                                     if i.bridge == bridge)}
        dp_ports = {name: dp for dp, name in self.switch.port_names().items()}
        return render.format_trace(result, ofports, dp_ports)

    # -- coverage ------------------------------------------------------------------------
    def _coverage_totals(self):
        st = self.switch.dp.stats()
        sent = 0
        for iface in self.switch.ifaces.values():
            if iface.open:
                sent += self.switch.interface_statistics(iface.name).get("tx_packets", 0)
        counters = self.server.counters
        return {"netdev_received": st["packets"],
                "netdev_sent": sent,
                "datapath_emc_hit": st["emc_hits"],
                "datapath_megaflow_hit": st["megaflow_hits"],
                "datapath_miss": st["misses"],
                "datapath_upcall": st["upcalls"],
                "datapath_drop_upcall_error": st["upcall_drops"],
                "datapath_drop_malformed": st["malformed"],
                "datapath_sample": st["samples"],
                "datapath_drop_sample": st["sample_drops"],
                "upcall_flow_limit_hit": self.switch.flows_not_cached,
                "unixctl_received": counters["unixctl_received"],
                "unixctl_replied": counters["unixctl_replied"]}

    def read_counter(self, args):
        totals = self.coverage.totals()
        if args[0] not in totals:
            raise UnixctlError("No such counter")
        return f"{totals[args[0]]}"

    async def run_coverage(self):
        """coverage.run() every RUN_INTERVAL s; late runs cover the slots missed."""
        loop = asyncio.get_running_loop()
        due = loop.time() + RUN_INTERVAL
        while True:
            await asyncio.sleep(max(due - loop.time(), 0))
            now = loop.time()
            slots = int((now - due) // RUN_INTERVAL) + 1
            try:
                self.coverage.run(slots)
            except Exception:
                logging.getLogger("vswitch.unixctl").exception("coverage run failed")
            due += slots * RUN_INTERVAL

    # -- logging -------------------------------------------------------------------------
    def vlog_set(self, args):
        known = vlog.modules()
        specs = [parse_vlog_spec(spec, known) for spec in args]
        try:
            vlog.set_levels(specs)
        except vlog.VlogError as exc:
            raise UnixctlError(str(exc)) from None
        return ""

    @staticmethod
    def vlog_reopen(args):
        if not any(isinstance(h, logging.FileHandler) for h in logging.getLogger().handlers):
            raise UnixctlError("Logging to file not configured")
        vlog.reopen()
        return ""

    # -- memory, exit --------------------------------------------------------------------
    def memory_show(self, args):
        sw = self.switch
        usage = {"handlers": 1, "revalidators": 1,
                 "ports": sum(len(b.iface_names) for b in sw.bridges.values()),
                 "rules": sum(len(t) for ofs in sw.of.values() for t in ofs.tables.tables),
                 "udpif keys": len(sw.flows),
                 "ofconns": sum(len(m.conns) for m in getattr(self.daemon, "connmgrs", {}).values())}
        return render.format_memory(usage)

    def upcall_show(self, args):
        """OVS's upcall/show (flows, limit), with the revalidator's CPU per
        round where OVS prints its dump duration (round_cpu.py)."""
        sw = self.switch
        timing = getattr(self.daemon, "round_cpu", None)
        return render.format_upcall_show(len(sw.flows), sw.flow_limit,
                                         timing.summary() if timing else None)

    def exit(self, args):
        if args and args[0] != "--cleanup":
            raise UnixctlError(f'"exit": unknown option "{args[0]}" (only --cleanup)')
        # Replied first, then the same shutdown as SIGTERM (which always
        # cleans up: ports closed, taps the switch created deleted).
        return Reply("", then=self.daemon.stop.set)


def make_server(daemon):
    commands = Commands(daemon)
    commands.server.background_factories.append(commands.run_coverage)
    return commands.server
