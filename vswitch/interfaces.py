"""The switch's interfaces: every Interface row's netdev opened as a datapath
port, and kept in step with the netdev by netlink link events.

"The netdev is the truth": a port is (re)opened when a netdev of its name
exists and closed when it goes away, as link events say (vswitch/linkmon.py),
never by polling.  An afpacket or afxdp port whose netdev is deleted (a VM
exits, a veth pair is removed) is closed at once, so nothing polls a dead
socket, and shows the reason in `status`; when a netdev of that name appears
again (a new ifindex) it is reopened on the same port numbers.  Taps and internal ports are the switch's
own devices: the switch holds their descriptor, and a link event for their
name in this namespace may only mean the kernel side moved to a container's
namespace, so they are left alone (the fast path marks one whose device was
deleted dead and stops polling it).  A row deleted and added again in one
transaction (libvirt's `--if-exists del-port ... -- add-port ...`) is a new
row: its netdev is closed and opened again.

Two numbers per interface: its datapath port (global, 1..MAX_DP_PORT, what
the fast path and megaflows use) and its OpenFlow port (per bridge,
1..65279, as OVS): `ofport_request` if free in the bridge, else the number it
had before the daemon restarted (`remembered`, which the daemon keeps in the
store as OVS keeps the Interface ofport column), else the lowest free one; a
bridge's own internal interface is OpenFlow's LOCAL (65534).

Each interface keeps its netdev's last link state for the OVS columns
link_state, admin_state, link_resets, mtu, mac_in_use and ifindex; `error`
says why its netdev is not open.
Without a link monitor (none could be opened) `retry_failed` is the
revalidator's once-a-second fallback.
"""
import logging
import socket
from dataclasses import dataclass, field

from vswitch.datapath import dpif
from vswitch.ofproto.ofswitch import read_mac

log = logging.getLogger("vswitch.interfaces")

MAX_DP_PORT = 1023  # datapath port numbers 1..1023 (VS_MAX_PORTS - 1)
MAX_OFPORT = 65279  # OpenFlow port numbers 1..65279 (0xfeff), as OVS
OFPORT_LOCAL = 65534  # the bridge's internal interface, as OVS shows it
OWNED_TYPES = ("tap", "internal")  # devices the switch creates and holds


@dataclass
class Interface:
    name: str
    bridge: str
    port: str
    type: str  # as configured
    dp_port: int = -1  # datapath port number while open
    assigned_ofport: int | None = None  # OpenFlow number in its bridge, kept while the row lives
    mac: bytes | None = None  # the netdev's address once opened
    dp_type: str | None = None  # afpacket, tap or afxdp, once opened
    error: str | None = None
    notes: list = field(default_factory=list)
    xdp_mode: str = "best-effort"  # options:xdp-mode, for type afxdp
    afxdp: dict | None = None  # what AF_XDP obtained: xdp_mode, n_queues
    row: str | None = None  # the Interface row's uuid
    ofport_request: int | None = None
    last_dp_port: int | None = None  # kept while the netdev is away, to reopen on it
    link_resets: int = 0  # carrier transitions seen (OVS's link_resets)

    @property
    def owned(self):
        return self.type in OWNED_TYPES

    @property
    def open(self):
        return self.dp_port > 0

    @property
    def ofport(self):
        """The Interface ofport column: -1 while the netdev is not open, as OVS."""
        return self.assigned_ofport if self.open and self.assigned_ofport else -1


def _desired(config):
    """{interface name: what its row asks for} over every bridge."""
    desired = {}
    for br in config["Bridge"].values():
        for port_uuid in br.get("ports", []):
            port = config["Port"].get(port_uuid)
            if not port:
                continue
            for iface_uuid in port.get("interfaces", []):
                row = config["Interface"].get(iface_uuid)
                if row:
                    desired[row["name"]] = {
                        "bridge": br["name"], "port": port["name"], "type": row.get("type") or "",
                        "xdp_mode": (row.get("options") or {}).get("xdp-mode", "best-effort"),
                        "ofport_request": row.get("ofport_request"), "row": iface_uuid}
    return desired


class Interfaces:
    """name -> Interface (`by_name`), their datapath ports, their links."""

    def __init__(self, dp):
        self.dp = dp
        self.by_name = {}
        self.links = {}  # netdev name -> its last linkmon.LinkEvent
        self.following_links = False  # a link monitor feeds link_event()
        self.remembered = {}  # (bridge, interface) -> OpenFlow port it had (from the store)

    # -- configuration ---------------------------------------------------------------
    def reconcile(self, config):
        """Opens, closes and reopens interfaces to match `config`; True if any changed."""
        desired = _desired(config)
        changed = False
        for name in list(self.by_name):
            iface, want = self.by_name[name], desired.get(name)
            if want is None or (want["bridge"], want["port"], want["type"], want["xdp_mode"], want["row"],
                                want["ofport_request"]) != (
                    iface.bridge, iface.port, iface.type, iface.xdp_mode, iface.row, iface.ofport_request):
                self._close(iface)
                del self.by_name[name]
                changed = True
        new = []
        for name, want in desired.items():
            if name not in self.by_name:
                iface = Interface(name, want["bridge"], want["port"], want["type"],
                                  xdp_mode=want["xdp_mode"], row=want["row"],
                                  ofport_request=want["ofport_request"])
                self.by_name[name] = iface
                new.append(iface)
        # Numbers asked for or had before go first, so that a port numbered
        # freely cannot take them.
        new.sort(key=lambda i: not (i.ofport_request or (i.bridge, i.name) in self.remembered))
        for iface in new:
            self._assign_ofport(iface)
        for iface in new:
            self._open(iface)
        return changed or bool(new)

    def _free_dp_port(self):
        used = {i.dp_port for i in self.by_name.values()} | {
            i.last_dp_port for i in self.by_name.values() if not i.open}
        return next(n for n in range(1, MAX_DP_PORT + 1) if n not in used)

    def _dp_port_for(self, iface):
        if iface.last_dp_port is not None:
            number, iface.last_dp_port = iface.last_dp_port, None
            return number
        return self._free_dp_port()

    def _assign_ofport(self, iface):
        """The interface's OpenFlow number in its bridge (see the module note)."""
        if iface.name == iface.bridge:
            iface.assigned_ofport = OFPORT_LOCAL
            return
        used = {i.assigned_ofport for i in self.by_name.values() if i.bridge == iface.bridge and i is not iface}
        for candidate in (iface.ofport_request, self.remembered.get((iface.bridge, iface.name))):
            if candidate and 0 < candidate <= MAX_OFPORT and candidate not in used:
                iface.assigned_ofport = candidate
                return
        iface.assigned_ofport = next(n for n in range(1, MAX_OFPORT + 1) if n not in used)

    def assigned_ofports(self):
        """{(bridge, interface): OpenFlow port} for the daemon to remember."""
        return {(i.bridge, i.name): i.assigned_ofport for i in self.by_name.values()
                if i.assigned_ofport and i.name != i.bridge}

    def _open(self, iface):
        kind = iface.type or "system"
        if kind in ("", "system", "afpacket"):
            dp_type = "afpacket"
        elif kind in OWNED_TYPES:
            dp_type = "tap"
        elif kind == "afxdp":
            if self._open_afxdp(iface):
                return
            dp_type = "afpacket"  # said so in the log and the status note
        else:
            iface.error = f"interface type {kind} is not supported yet"
            log.error("%s: %s", iface.name, iface.error)
            return
        dp_port = self._dp_port_for(iface)
        try:
            self.dp.add_port(dp_port, dp_type, iface.name)
        except OSError as exc:
            iface.error = f"could not open network device {iface.name} ({exc.strerror})"
            iface.dp_port, iface.last_dp_port = -1, dp_port
            log.warning("%s", iface.error)
            return
        self._opened(iface, dp_port, dp_type)
        log.info("added %s interface %s on port %d", kind, iface.name, iface.ofport)

    def _open_afxdp(self, iface):
        """True when AF_XDP is up; otherwise notes why, for the afpacket fallback."""
        dp_port = self._dp_port_for(iface)
        try:
            iface.afxdp = self.dp.add_afxdp_port(dp_port, iface.name, iface.xdp_mode)
        except dpif.AfxdpError as exc:
            iface.afxdp, iface.last_dp_port = None, dp_port
            if exc.step == "find device":
                return False  # no netdev yet: afpacket fails too and is retried
            iface.notes = [f"afxdp unavailable (xdp-mode {iface.xdp_mode}: {exc.strerror}), "
                           f"fell back to afpacket"]
            log.warning("%s: %s", iface.name, iface.notes[0])
            return False
        iface.notes = []
        self._opened(iface, dp_port, "afxdp")
        log.info("added afxdp interface %s on port %d (XDP %s mode, copy, %d queue(s))",
                 iface.name, iface.ofport, iface.afxdp["xdp_mode"], iface.afxdp["n_queues"])
        return True

    @staticmethod
    def _opened(iface, dp_port, dp_type):
        iface.dp_port, iface.dp_type, iface.error, iface.last_dp_port = dp_port, dp_type, None, None
        iface.mac = read_mac(iface.name).to_bytes(6, "big")

    def _close(self, iface, keep_number=False):
        if iface.open:
            log.info("removed interface %s (port %d)", iface.name, iface.ofport)
            self.dp.del_port(iface.dp_port)  # closing a tap's fd deletes the tap
            if keep_number:
                iface.last_dp_port = iface.dp_port
        iface.dp_port = -1

    def close_all(self):
        for iface in self.by_name.values():
            self._close(iface)
        self.by_name.clear()

    # -- netdevs coming and going ---------------------------------------------------------
    def link_event(self, ev):
        """Applies one netlink link event; returns (ports changed?, carrier
        change as (name, carrier) or None)."""
        old = self.links.get(ev.name)
        if ev.exists:
            self.links[ev.name] = ev
        else:
            self.links.pop(ev.name, None)
        iface = self.by_name.get(ev.name)
        if iface is None:
            return False, None
        was = bool(old and old.exists and old.carrier)
        now = bool(ev.exists and ev.carrier)
        carrier = (ev.name, now) if was != now or old is None else None
        if was != now and old is not None:
            iface.link_resets += 1
        if iface.owned:
            return False, carrier
        if not ev.exists and iface.open:
            self._close(iface, keep_number=True)
            iface.error = f"network device {iface.name} went away"
            log.warning("%s: netdev gone, port closed (reopened when it comes back)", iface.name)
            return True, carrier
        if ev.exists and (not iface.open or (old is not None and old.ifindex != ev.ifindex)):
            if iface.open:  # recreated between two events we read together
                self._close(iface, keep_number=True)
            self._open(iface)
            if iface.open:
                log.info("%s: netdev back (ifindex %d), port reopened", iface.name, ev.ifindex)
                return True, carrier
        return False, carrier

    def retry_failed(self):
        """Without link events: reopen interfaces whose netdev may have appeared."""
        reopened = False
        for iface in self.by_name.values():
            if not iface.open and iface.error and not iface.error.startswith("interface type"):
                self._open(iface)
                reopened |= iface.open
        return reopened

    # -- what vsctl reads -------------------------------------------------------------------
    def port_names(self):
        """{datapath port: interface name}, for showing megaflows."""
        return {i.dp_port: i.name for i in self.by_name.values() if i.open}

    def status(self, name):
        iface = self.by_name.get(name)
        if iface is None:
            return {}
        status = {"driver_name": iface.dp_type or "none"}
        if iface.error:
            status["error"] = iface.error
        for note in iface.notes:
            status["note"] = note
        if iface.afxdp and iface.dp_type == "afxdp":
            status["xdp_mode"] = iface.afxdp["xdp_mode"]
            status["xdp_bind"] = "zerocopy" if iface.afxdp["zerocopy"] else "copy"
            status["n_rxq"] = str(iface.afxdp["n_queues"])
        if iface.open and (self.dp.port_stats(iface.dp_port) or {}).get("dead"):
            status["error"] = f"network device {iface.name} was deleted"
        return status

    def statistics(self, name):
        iface = self.by_name.get(name)
        if iface is None or not iface.open:
            return {}
        stats = self.dp.port_stats(iface.dp_port) or {}
        if iface.dp_type == "afxdp":  # software offloads, kernel ring drops
            stats.update({f"afxdp_{k}": v for k, v in (self.dp.afxdp_stats(iface.dp_port) or {}).items()})
        return stats

    def ofport(self, name):
        iface = self.by_name.get(name)
        return iface.ofport if iface else None

    def netdev_info(self, name):
        """What exporters report of an open interface's netdev: ifindex (from
        the last link event, else the kernel's), carrier, admin state, MTU
        and the datapath port's counters; None when it is not open."""
        iface, ev = self.by_name.get(name), self.links.get(name)
        if iface is None or not iface.open:
            return None
        ifindex = ev.ifindex if ev is not None else None
        if not ifindex:
            try:
                ifindex = socket.if_nametoindex(name)
            except OSError:
                ifindex = 0
        return {"ifindex": ifindex,
                "carrier": ev.carrier if ev is not None else True,
                "admin_up": ev.admin_up if ev is not None else True,
                "mtu": ev.mtu if ev is not None else None,
                "stats": self.dp.port_stats(iface.dp_port) or {}}

    def column(self, column, name):
        """OVS's link columns of the interface, from its netdev's last event."""
        iface, ev = self.by_name.get(name), self.links.get(name)
        if iface is None:
            return None
        if column == "link_resets":
            return iface.link_resets
        if column == "error":
            return self.status(name).get("error")
        if ev is None:
            return None
        return {"link_state": "up" if ev.carrier else "down",
                "admin_state": "up" if ev.admin_up else "down",
                "mtu": ev.mtu, "mac_in_use": ev.mac, "ifindex": ev.ifindex}.get(column)
