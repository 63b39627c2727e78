"""One bond member's LACP variables (802.1AX 5.4.7) and the entry actions of
its state machines (the names used in `lacp.machines`)."""
from collections import deque

from vswitch.lacp import pdu as P
from vswitch.proto import DropCounter

FAST_PERIODIC_TIME = 1.0     # 5.4.4 constants, seconds
SLOW_PERIODIC_TIME = 30.0
SHORT_TIMEOUT_TIME = 3.0     # 3 x fast
LONG_TIMEOUT_TIME = 90.0     # 3 x slow
TX_LIMIT = 3                 # 5.4.16: at most 3 LACPDUs per fast periodic time


class Member:
    def __init__(self, bond, name: str, port_id: int, port_priority: int,
                 key: int, mac: bytes):
        self.bond = bond
        self.name = name
        self.port_id = port_id
        self.port_priority = port_priority
        self.key = key
        self.mac = mac
        self.port_enabled = True
        self.counters = {"rx_pdus": 0, "tx_pdus": 0}
        self.rx_bad = DropCounter()
        self.begin()

    # -- initialisation (BEGIN) -------------------------------------------
    def begin(self) -> None:
        self.rx_state, self.periodic_state, self.mux_state = (
            "INITIALIZE", "NO_PERIODIC", "DETACHED")
        self.selected = "UNSELECTED"
        self.force_unselected = False
        self.pending_pdu = None
        self.current_while = self.periodic_timer = self.wait_while = None
        self.actor_sync = self.collecting = self.distributing = False
        self.ntt = False
        self.tx_times = deque()
        self.record_default()

    # -- derived variables ----------------------------------------------------
    @property
    def actor_active(self) -> bool:
        return self.bond.active

    @property
    def partner_active(self) -> bool:
        return bool(self.partner.state & P.ACTIVITY)

    @property
    def partner_short_timeout(self) -> bool:
        return bool(self.partner.state & P.TIMEOUT)

    @property
    def partner_in_sync(self) -> bool:
        return bool(self.partner.state & P.SYNCHRONIZATION)

    @property
    def partner_individual(self) -> bool:
        return not self.partner.state & P.AGGREGATION

    def actor_info(self) -> P.PortInfo:
        state = (P.ACTIVITY if self.bond.active else 0) \
            | (P.TIMEOUT if self.bond.fast else 0) \
            | (P.AGGREGATION if self.bond.aggregatable else 0) \
            | (P.SYNCHRONIZATION if self.actor_sync else 0) \
            | (P.COLLECTING if self.collecting else 0) \
            | (P.DISTRIBUTING if self.distributing else 0) \
            | (P.DEFAULTED if self.rx_state == "DEFAULTED" else 0) \
            | (P.EXPIRED if self.rx_state == "EXPIRED" else 0)
        return P.PortInfo(self.bond.system_priority, self.bond.system, self.key,
                          self.port_priority, self.port_id, state)

    def is_candidate(self) -> bool:
        return (self.rx_state in ("CURRENT", "EXPIRED")
                and self.partner.system not in (self.bond.system, bytes(6)))

    def lag_id(self) -> tuple:
        p = self.partner
        return (self.key, p.system_priority, p.system, p.key)

    def priority_vector(self) -> tuple:
        """Port identifiers as ranked by the system with the better System ID."""
        ours = (self.bond.system_priority, self.bond.system)
        theirs = (self.partner.system_priority, self.partner.system)
        if ours <= theirs:
            return ours + (self.port_priority, self.port_id)
        return theirs + (self.partner.port_priority, self.partner.port)

    def may_enable(self) -> bool:
        """Collecting and distributing, or a fallback active-backup member."""
        if self.mux_state == "COLLECTING_DISTRIBUTING":
            return True
        return (self.bond.fallback_ab and self.rx_state == "DEFAULTED"
                and self.port_enabled and not self.bond.negotiated())

    # -- receive machine actions (5.4.12) -------------------------------------
    def record_default(self) -> None:
        # Partner_Admin: nobody, passive, asking for our own rate.
        self.partner = P.PortInfo(state=P.TIMEOUT if self.bond.fast else 0)

    def rx_port_disabled(self) -> None:
        self.pending_pdu = None
        self.current_while = None
        self._set_partner_state(clear=P.SYNCHRONIZATION)

    def rx_expired(self) -> None:
        self._set_partner_state(set_=P.TIMEOUT, clear=P.SYNCHRONIZATION)
        self.current_while = self.bond.now + SHORT_TIMEOUT_TIME

    def rx_defaulted(self) -> None:
        if self.partner != P.PortInfo(state=self.partner.state):
            self.force_unselected = True        # update_Default_Selected
        self.record_default()
        self.current_while = None

    def rx_current(self) -> None:
        pdu, self.pending_pdu = self.pending_pdu, None
        if not pdu.actor.same_identity(self.partner):
            self.force_unselected = True        # update_Selected
        actor = self.actor_info()
        if not _tx_equal(pdu.partner, actor):
            self.ntt = True                     # update_NTT
        self.partner = pdu.actor.with_state(
            (pdu.actor.state & ~P.SYNCHRONIZATION)
            | (P.SYNCHRONIZATION if _partner_sync(pdu, actor) else 0))
        self.current_while = self.bond.now + (
            SHORT_TIMEOUT_TIME if self.bond.fast else LONG_TIMEOUT_TIME)

    def _set_partner_state(self, set_: int = 0, clear: int = 0) -> None:
        self.partner = self.partner.with_state((self.partner.state | set_) & ~clear)

    # -- periodic transmission actions (5.4.13) -------------------------------
    def periodic_stop(self) -> None:
        self.periodic_timer = None

    def periodic_fast(self) -> None:
        self.periodic_timer = self.bond.now + FAST_PERIODIC_TIME

    def periodic_slow(self) -> None:
        self.periodic_timer = self.bond.now + SLOW_PERIODIC_TIME

    def periodic_tx(self) -> None:
        self.periodic_timer = None
        self.ntt = True

    # -- mux actions (5.4.15, coupled control) ----------------------------------
    def mux_detached(self) -> None:
        self.actor_sync = self.collecting = self.distributing = False
        self.wait_while = None
        self.ntt = True

    def mux_waiting(self) -> None:
        self.wait_while = self.bond.now + self.bond.aggregate_wait

    def mux_attached(self) -> None:
        self.wait_while = None
        self.actor_sync = True
        self.collecting = self.distributing = False
        self.ntt = True

    def mux_collecting_distributing(self) -> None:
        self.collecting = self.distributing = True
        self.ntt = True

    # -- transmit machine (5.4.16) ----------------------------------------------
    def tx_allowed_at(self, now: float) -> float:
        while self.tx_times and self.tx_times[0] <= now - FAST_PERIODIC_TIME:
            self.tx_times.popleft()
        if len(self.tx_times) < TX_LIMIT:
            return now
        return self.tx_times[0] + FAST_PERIODIC_TIME

    def transmit(self, now: float) -> bytes | None:
        if not self.ntt or self.periodic_state == "NO_PERIODIC":
            self.ntt = False                    # nothing goes out unless periodic runs
            return None
        if self.tx_allowed_at(now) > now:
            return None
        self.ntt = False
        self.tx_times.append(now)
        self.counters["tx_pdus"] += 1
        return P.encode(P.Lacpdu(self.actor_info(), self.partner), self.mac)

    def timers(self) -> list:
        return [t for t in (self.current_while, self.periodic_timer, self.wait_while)
                if t is not None]


def _tx_equal(a: P.PortInfo, b: P.PortInfo) -> bool:
    """update_NTT's comparison: identity plus the four state bits that matter."""
    mask = P.ACTIVITY | P.TIMEOUT | P.SYNCHRONIZATION | P.AGGREGATION
    return a.same_identity(b) and not (a.state ^ b.state) & mask


def _partner_sync(pdu: P.Lacpdu, actor: P.PortInfo) -> bool:
    """recordPDU (5.4.9): the partner is in sync if it has our information
    right and says it is in sync, or if it is an Individual link in sync."""
    if not pdu.actor.state & P.SYNCHRONIZATION:
        return False
    matches = (pdu.partner.same_identity(actor)
               and not (pdu.partner.state ^ actor.state) & P.AGGREGATION)
    return matches or not pdu.actor.state & P.AGGREGATION
