"""The switch's interfaces: every Interface row's netdev opened as a datapath
port, and kept in step with the netdev by netlink link events.

How a type is opened (which C driver, its options and their defaults, the
fallback when it cannot be set up, whether the switch owns the device) is the
port-type registry's, vswitch/datapath/port_types.py: nothing here tests a
type.

"The netdev is the truth": a port is (re)opened when a netdev of its name
exists and closed when it goes away, as link events say (vswitch/linkmon.py),
never by polling.  An afpacket or afxdp port whose netdev is deleted (a VM
exits, a veth pair is removed) is closed at once, so nothing polls a dead
socket, and shows the reason in `status`; when a netdev of that name appears
again (a new ifindex) it is reopened on the same port numbers.  Ports of an
owned type (taps, internal and dummy ports) are the switch's own devices: the
switch holds their descriptor, and a link event for their name in this
namespace may only mean the kernel side moved to a container's namespace, so
they are left alone (the fast path marks one whose device was deleted dead
and stops polling it).  A row deleted and added again in one
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

from vswitch.datapath import port_types
from vswitch.ofproto.ofswitch import read_mac

log = logging.getLogger("vswitch.interfaces")

MAX_DP_PORT = 1023  # datapath port numbers 1..1023 (VS_MAX_PORTS - 1)
MAX_OFPORT = 65279  # OpenFlow port numbers 1..65279 (0xfeff), as OVS
OFPORT_LOCAL = 65534  # the bridge's internal interface, as OVS shows it


@dataclass
class Interface:
    name: str
    bridge: str
    port: str
    type: str  # as configured
    dp_port: int = -1  # datapath port number while open
    assigned_ofport: int | None = None  # OpenFlow number in its bridge, kept while the row lives
    mac: bytes | None = None  # the netdev's address once opened
    dp_type: str | None = None  # the datapath driver it was opened with (port_types)
    error: str | None = None
    notes: list = field(default_factory=list)
    options: dict = field(default_factory=dict)  # the row's options, defaults filled in
    driver_status: dict | None = None  # what the driver reported when it was last opened
    row: str | None = None  # the Interface row's uuid
    ofport_request: int | None = None
    last_dp_port: int | None = None  # kept while the netdev is away, to reopen on it
    link_resets: int = 0  # carrier transitions seen (OVS's link_resets)

    @property
    def port_type(self):
        """Its port_types.PortType, or None for a type the switch does not open."""
        return port_types.lookup(self.type)

    @property
    def owned(self):
        ptype = self.port_type
        return bool(ptype and ptype.owned)

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
                    kind = row.get("type") or ""
                    ptype = port_types.lookup(kind)
                    options = ptype.resolved_options(row.get("options")) if ptype else {}
                    desired[row["name"]] = {
                        "bridge": br["name"], "port": port["name"], "type": kind, "options": options,
                        "ofport_request": row.get("ofport_request"), "row": iface_uuid}
    return desired


def _fallback_note(ptype, options, exc):
    """Why a type fell back: "afxdp unavailable (xdp-mode native: attach
    native XDP: Operation not supported), fell back to afpacket"."""
    step = getattr(exc, "step", "")
    what = f"{step}: {exc.strerror}" if step else exc.strerror
    given = ", ".join(f"{k} {v}" for k, v in options.items())
    return (f"{ptype.name} unavailable ({given + ': ' if given else ''}{what}), "
            f"fell back to {ptype.fallback}")


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
            if want is None or (want["bridge"], want["port"], want["type"], want["options"], want["row"],
                                want["ofport_request"]) != (
                    iface.bridge, iface.port, iface.type, iface.options, iface.row, iface.ofport_request):
                self._close(iface)
                del self.by_name[name]
                changed = True
        new = []
        for name, want in desired.items():
            if name not in self.by_name:
                iface = Interface(name, want["bridge"], want["port"], want["type"],
                                  options=want["options"], row=want["row"],
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
        """Opens the interface with its type's driver, or the fallbacks the
        registry names when the driver cannot be set up (noted in status)."""
        ptype = iface.port_type
        if ptype is None:
            iface.error = f"interface type {iface.type or 'system'} is not supported yet"
            log.error("%s: %s", iface.name, iface.error)
            return
        dp_port = self._dp_port_for(iface)
        notes = []
        for attempt in port_types.attempts(ptype):
            options = attempt.resolved_options(iface.options)
            try:
                self.dp.add_port(dp_port, attempt.driver, iface.name, options)
            except OSError as exc:
                if attempt.fallback is not None and port_types.falls_back(exc.errno):
                    notes.append(_fallback_note(attempt, options, exc))
                    log.warning("%s: %s", iface.name, notes[-1])
                    continue
                iface.notes, iface.driver_status = notes, None
                iface.error = f"could not open network device {iface.name} ({exc.strerror})"
                iface.dp_port, iface.last_dp_port = -1, dp_port
                log.warning("%s", iface.error)
                return
            iface.notes = notes
            self._opened(iface, dp_port, attempt)
            detail = ", ".join(f"{k} {v}" for k, v in iface.driver_status.items())
            log.info("added %s interface %s on port %d%s", ptype.name or "system", iface.name,
                     iface.ofport, f" ({attempt.driver}: {detail})" if detail else "")
            return

    def _opened(self, iface, dp_port, ptype):
        iface.dp_port, iface.dp_type, iface.error, iface.last_dp_port = dp_port, ptype.driver, None, None
        iface.driver_status = self.dp.port_type_status(dp_port) or {}
        iface.mac = (read_mac(iface.name).to_bytes(6, "big") if ptype.kernel_netdev
                     else port_types.dummy_mac(dp_port))

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
        recreated = old is not None and old.ifindex != ev.ifindex
        # A port that failed to open is retried when its netdev changed
        # (appeared, recreated, went up, another MTU...), not on a report of
        # the same state: the failed attempt itself toggles the promiscuous
        # flag, which the kernel reports as a link change, and retrying on
        # that made the daemon retry without end.
        if ev.exists and ((iface.open and recreated) or (not iface.open and old != ev)):
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
        # The driver's own keys (afxdp: xdp_mode, xdp_bind, n_rxq): live while
        # open, as last reported while the netdev is away.
        live = self.dp.port_type_status(iface.dp_port) if iface.open else None
        if live is not None:
            iface.driver_status = live
        status.update(iface.driver_status or {})
        if iface.open and (self.dp.port_stats(iface.dp_port) or {}).get("dead"):
            status["error"] = f"network device {iface.name} was deleted"
        return status

    def statistics(self, name):
        iface = self.by_name.get(name)
        if iface is None or not iface.open:
            return {}
        stats = self.dp.port_stats(iface.dp_port) or {}
        # The driver's own counters, as DRIVER_NAME (afxdp_tx_csum, ...).
        stats.update({f"{iface.dp_type}_{k}": v
                      for k, v in (self.dp.port_type_stats(iface.dp_port) or {}).items()})
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
