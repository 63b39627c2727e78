"""The switch's interfaces: every Interface row's netdev opened as a datapath
port, and kept in step with the netdev by netlink link events.

"The netdev is the truth": a port is (re)opened when a netdev of its name
exists and closed when it goes away, as link events say (vswitch/linkmon.py),
never by polling.  An afpacket or afxdp port whose netdev is deleted (a VM
exits, a veth pair is removed) is closed at once, so nothing polls a dead
socket, and shows the reason in `status`; when a netdev of that name appears
again (a new ifindex) it is reopened on the same datapath port number, so
OpenFlow port numbers do not move.  Taps and internal ports are the switch's
own devices: the switch holds their descriptor, and a link event for their
name in this namespace may only mean the kernel side moved to a container's
namespace, so they are left alone (the fast path marks one whose device was
deleted dead and stops polling it).  A row deleted and added again in one
transaction (libvirt's `--if-exists del-port ... -- add-port ...`) is a new
row: its netdev is closed and opened again.

Each interface keeps its netdev's last link state for the OVS columns
link_state, admin_state, link_resets, mtu, mac_in_use and ifindex.
Without a link monitor (none could be opened) `retry_failed` is the
revalidator's once-a-second fallback.
"""
import logging
from dataclasses import dataclass, field

from vswitch.datapath import dpif
from vswitch.ofproto.ofswitch import read_mac

log = logging.getLogger("vswitch.interfaces")

MAX_DP_PORT = 1023  # datapath port numbers (and, for now, OpenFlow ones) 1..1023
OWNED_TYPES = ("tap", "internal")  # devices the switch creates and holds


@dataclass
class Interface:
    name: str
    bridge: str
    port: str
    type: str  # as configured
    ofport: int = -1
    mac: bytes | None = None  # the netdev's address once opened
    dp_type: str | None = None  # afpacket, tap or afxdp, once opened
    error: str | None = None
    notes: list = field(default_factory=list)
    xdp_mode: str = "best-effort"  # options:xdp-mode, for type afxdp
    afxdp: dict | None = None  # what AF_XDP obtained: xdp_mode, n_queues
    row: str | None = None  # the Interface row's uuid
    ofport_request: int | None = None
    last_ofport: int | None = None  # kept while the netdev is away, to reopen on it
    link_resets: int = 0  # carrier transitions seen (OVS's link_resets)

    @property
    def owned(self):
        return self.type in OWNED_TYPES

    @property
    def open(self):
        return self.ofport > 0


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

    # -- configuration ---------------------------------------------------------------
    def reconcile(self, config):
        """Opens, closes and reopens interfaces to match `config`; True if any changed."""
        desired = _desired(config)
        changed = False
        for name in list(self.by_name):
            iface, want = self.by_name[name], desired.get(name)
            if want is None or (want["bridge"], want["port"], want["type"], want["xdp_mode"], want["row"]) != (
                    iface.bridge, iface.port, iface.type, iface.xdp_mode, iface.row):
                self._close(iface)
                del self.by_name[name]
                changed = True
        for name, want in desired.items():
            if name not in self.by_name:
                iface = Interface(name, want["bridge"], want["port"], want["type"],
                                  xdp_mode=want["xdp_mode"], row=want["row"],
                                  ofport_request=want["ofport_request"])
                self.by_name[name] = iface
                self._open(iface)
                changed = True
        return changed

    def _free_ofport(self, requested, local=False):
        """A free datapath port number.  A bridge's own internal interface is
        OpenFlow's LOCAL port: it takes numbers from the top, so that the
        first added port is ofport 1, as in OVS."""
        used = {i.ofport for i in self.by_name.values()} | {
            i.last_ofport for i in self.by_name.values() if not i.open}
        if requested and 0 < requested <= MAX_DP_PORT and requested not in used:
            return requested
        order = range(MAX_DP_PORT, 0, -1) if local else range(1, MAX_DP_PORT + 1)
        return next(n for n in order if n not in used)

    def _number_for(self, iface):
        if iface.last_ofport is not None:
            number, iface.last_ofport = iface.last_ofport, None
            return number
        return self._free_ofport(iface.ofport_request, local=iface.name == iface.bridge)

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
        ofport = self._number_for(iface)
        try:
            self.dp.add_port(ofport, dp_type, iface.name)
        except OSError as exc:
            iface.error = f"could not open network device {iface.name} ({exc.strerror})"
            iface.ofport, iface.last_ofport = -1, ofport
            log.warning("%s", iface.error)
            return
        self._opened(iface, ofport, dp_type)
        log.info("added %s interface %s on port %d", kind, iface.name, ofport)

    def _open_afxdp(self, iface):
        """True when AF_XDP is up; otherwise notes why, for the afpacket fallback."""
        ofport = self._number_for(iface)
        try:
            iface.afxdp = self.dp.add_afxdp_port(ofport, iface.name, iface.xdp_mode)
        except dpif.AfxdpError as exc:
            iface.afxdp, iface.last_ofport = None, ofport
            if exc.step == "find device":
                return False  # no netdev yet: afpacket fails too and is retried
            iface.notes = [f"afxdp unavailable (xdp-mode {iface.xdp_mode}: {exc.strerror}), "
                           f"fell back to afpacket"]
            log.warning("%s: %s", iface.name, iface.notes[0])
            return False
        iface.notes = []
        self._opened(iface, ofport, "afxdp")
        log.info("added afxdp interface %s on port %d (XDP %s mode, copy, %d queue(s))",
                 iface.name, ofport, iface.afxdp["xdp_mode"], iface.afxdp["n_queues"])
        return True

    @staticmethod
    def _opened(iface, ofport, dp_type):
        iface.ofport, iface.dp_type, iface.error, iface.last_ofport = ofport, dp_type, None, None
        iface.mac = read_mac(iface.name).to_bytes(6, "big")

    def _close(self, iface, keep_number=False):
        if iface.open:
            self.dp.del_port(iface.ofport)  # closing a tap's fd deletes the tap
            log.info("removed interface %s (port %d)", iface.name, iface.ofport)
            if keep_number:
                iface.last_ofport = iface.ofport
        iface.ofport = -1

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
        return {i.ofport: i.name for i in self.by_name.values() if i.open}

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
        if iface.open and (self.dp.port_stats(iface.ofport) or {}).get("dead"):
            status["error"] = f"network device {iface.name} was deleted"
        return status

    def statistics(self, name):
        iface = self.by_name.get(name)
        if iface is None or not iface.open:
            return {}
        stats = self.dp.port_stats(iface.ofport) or {}
        if iface.dp_type == "afxdp":  # software offloads, kernel ring drops
            stats.update({f"afxdp_{k}": v for k, v in (self.dp.afxdp_stats(iface.ofport) or {}).items()})
        return stats

    def ofport(self, name):
        iface = self.by_name.get(name)
        return iface.ofport if iface else None

    def column(self, column, name):
        """OVS's link columns of the interface, from its netdev's last event."""
        iface, ev = self.by_name.get(name), self.links.get(name)
        if iface is None:
            return None
        if column == "link_resets":
            return iface.link_resets
        if ev is None:
            return None
        return {"link_state": "up" if ev.carrier else "down",
                "admin_state": "up" if ev.admin_up else "down",
                "mtu": ev.mtu, "mac_in_use": ev.mac, "ifindex": ev.ifindex}.get(column)
