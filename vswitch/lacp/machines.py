"""The per-port state machines of IEEE 802.1AX-2008 clause 5.4, as tables.

Each table maps `(state, event) -> (entry action, next state)`; the action
names are methods of `lacp.member.Member`, the events are the standard's
transition conditions evaluated as booleans by `*_events()` below, listed in
the priority the diagrams give them ("*" = from any state, like the arrows
into a state with no source in the figures). What we left out on purpose:
port_moved (a partner showing up on another port of ours is treated as a
plain partner change), LACP_Enabled=FALSE (a member of a LACP bond always
runs LACP) and the Standby selection result (no max-links limit).
"""
from vswitch.proto import StateTable

# 5.4.12 Receive machine (Figure 5-18).
RECEIVE = StateTable("receive", {
    ("INITIALIZE", "UCT"): ("rx_port_disabled", "PORT_DISABLED"),
    ("*", "port_disabled"): ("rx_port_disabled", "PORT_DISABLED"),
    ("PORT_DISABLED", "port_enabled"): ("rx_expired", "EXPIRED"),
    ("EXPIRED", "pdu_received"): ("rx_current", "CURRENT"),
    ("EXPIRED", "current_while_expired"): ("rx_defaulted", "DEFAULTED"),
    ("DEFAULTED", "pdu_received"): ("rx_current", "CURRENT"),
    ("CURRENT", "pdu_received"): ("rx_current", "CURRENT"),
    ("CURRENT", "current_while_expired"): ("rx_expired", "EXPIRED"),
})


def receive_events(m, now):
    if not m.port_enabled:
        yield "port_disabled"
    yield "UCT"
    if m.port_enabled:
        yield "port_enabled"
    if m.pending_pdu is not None:
        yield "pdu_received"
    if m.current_while is not None and now >= m.current_while:
        yield "current_while_expired"


# 5.4.13 Periodic Transmission machine (Figure 5-19).
PERIODIC = StateTable("periodic", {
    ("*", "no_periodic"): ("periodic_stop", "NO_PERIODIC"),
    ("NO_PERIODIC", "UCT"): ("periodic_fast", "FAST_PERIODIC"),
    ("FAST_PERIODIC", "periodic_timer_expired"): ("periodic_tx", "PERIODIC_TX"),
    ("FAST_PERIODIC", "partner_long_timeout"): ("periodic_slow", "SLOW_PERIODIC"),
    ("SLOW_PERIODIC", "periodic_timer_expired"): ("periodic_tx", "PERIODIC_TX"),
    ("SLOW_PERIODIC", "partner_short_timeout"): ("periodic_tx", "PERIODIC_TX"),
    ("PERIODIC_TX", "partner_short_timeout"): ("periodic_fast", "FAST_PERIODIC"),
    ("PERIODIC_TX", "partner_long_timeout"): ("periodic_slow", "SLOW_PERIODIC"),
})


def periodic_events(m, now):
    # Both sides passive, or the port down: nobody starts the conversation.
    if not m.port_enabled or (not m.actor_active and not m.partner_active):
        yield "no_periodic"
        return
    yield "UCT"
    if m.periodic_timer is not None and now >= m.periodic_timer:
        yield "periodic_timer_expired"
    yield "partner_short_timeout" if m.partner_short_timeout else "partner_long_timeout"


# 5.4.15 Mux machine, coupled control (Figure 5-21): collecting and
# distributing switch on together, which is what a bond member needs.
MUX = StateTable("mux", {
    ("DETACHED", "selected"): ("mux_waiting", "WAITING"),
    ("WAITING", "unselected"): ("mux_detached", "DETACHED"),
    ("WAITING", "ready"): ("mux_attached", "ATTACHED"),
    ("ATTACHED", "unselected"): ("mux_detached", "DETACHED"),
    ("ATTACHED", "partner_in_sync"): ("mux_collecting_distributing",
                                      "COLLECTING_DISTRIBUTING"),
    ("COLLECTING_DISTRIBUTING", "unselected"): ("mux_attached", "ATTACHED"),
    ("COLLECTING_DISTRIBUTING", "partner_out_of_sync"): ("mux_attached", "ATTACHED"),
})


def mux_events(m, now):
    if m.selected != "SELECTED":
        yield "unselected"
        return
    yield "selected"
    if m.wait_while is not None and now >= m.wait_while:
        yield "ready"
    yield "partner_in_sync" if m.partner_in_sync else "partner_out_of_sync"


def select_aggregator(engine) -> None:
    """5.4.14 Selection Logic, for the one aggregator a bond has.

    Members whose partner is current (or just expired) are candidates, except
    a partner that is ourselves (a looped cable). The lead is the candidate
    with the best port priority as seen by the system with the better System
    Identifier (5.4.14: the higher-priority system decides), preferring an
    in-sync one, and every candidate with the same LAG ID (our key, partner
    system priority, system and key) joins it. A partner marked Individual
    aggregates with nothing else.
    """
    candidates = [m for m in engine.members.values() if m.is_candidate()]
    lead = min(candidates, key=lambda m: (not m.partner_in_sync, m.priority_vector()),
               default=None)
    for m in engine.members.values():
        if m.force_unselected:
            m.selected = "UNSELECTED"
        elif lead is None or m not in candidates:
            m.selected = "UNSELECTED"
        elif m is lead:
            m.selected = "SELECTED"
        elif m.lag_id() == lead.lag_id() and not (lead.partner_individual
                                                    or m.partner_individual):
            m.selected = "SELECTED"
        else:
            m.selected = "UNSELECTED"
