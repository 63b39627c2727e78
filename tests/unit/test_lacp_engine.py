"""LACP engines negotiating over in-memory links with a fake clock."""
import pytest
from helpers.rawsock import MemoryWire

from vswitch.lacp import LacpEngine, pdu as P, render_show

A_SYS, B_SYS, C_SYS = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


def engine(system, mode="active", rate="fast", members=("m1", "m2"), **extra):
    return LacpEngine({"system_id": system, "mode": mode, "rate": rate,
                       "members": {m: {"port_id": i + 1} for i, m in enumerate(members)},
                       **extra})


def pair(a_mode="active", b_mode="active", a_rate="fast", b_rate="fast", **extra):
    a = engine(A_SYS, a_mode, a_rate, **extra)
    b = engine(B_SYS, b_mode, b_rate)
    wire = MemoryWire([((a, "m1"), (b, "m1")), ((a, "m2"), (b, "m2"))])
    return a, b, wire


def member(engine, name):
    return engine.show()["members"][name]


def tx_times(wire, engine, port):
    return [t for t, e, p, _f in wire.sent if e is engine and p == port]


@pytest.mark.parametrize("a_mode,b_mode", [("active", "active"), ("active", "passive"),
                                           ("passive", "active")])
def test_two_engines_negotiate(a_mode, b_mode):
    a, b, wire = pair(a_mode, b_mode)
    wire.run_until(1.0)
    assert a.enabled_members() == [] and b.enabled_members() == []   # waiting (2 s)
    wire.run_until(3.5)
    for me, other in ((a, B_SYS), (b, A_SYS)):
        assert me.enabled_members() == ["m1", "m2"]
        show = me.show()
        assert show["negotiated"] is True
        for name in ("m1", "m2"):
            m = show["members"][name]
            assert m["status"] == "current" and m["attached"] and m["may_enable"]
            assert m["partner"]["sys_id"] == other
            assert {"synchronized", "collecting", "distributing"} <= set(m["actor"]["state"])
            assert {"synchronized", "collecting", "distributing"} <= set(m["partner"]["state"])
    # Each side's partner port is the other side's actor port.
    assert member(a, "m2")["partner"]["port_id"] == member(b, "m2")["actor"]["port_id"]


def test_passive_passive_never_negotiates():
    a, b, wire = pair("passive", "passive")
    wire.run_until(100.0)
    assert wire.sent == []
    assert not a.show()["negotiated"] and not b.show()["negotiated"]
    assert a.enabled_members() == [] == b.enabled_members()
    assert member(a, "m1")["status"] == "defaulted"


def test_partner_expires_after_three_fast_intervals_then_renegotiates():
    a, b, wire = pair()
    wire.run_until(5.0)
    assert a.enabled_members() == ["m1", "m2"]
    wire.cut_link(a, "m1")
    cut = wire.now
    wire.run_until(cut + 1.9)          # the last PDU arrived at most 1 s before the cut
    assert member(a, "m1")["status"] == "current"
    wire.run_until(cut + 3.05)
    for e in (a, b):
        m1 = member(e, "m1")
        assert m1["status"] == "expired" and not m1["may_enable"]
        assert "expired" in m1["actor"]["state"]
        assert "synchronized" not in m1["partner"]["state"]
        assert e.enabled_members() == ["m2"]          # the other member carries on
    wire.run_until(cut + 6.1)
    assert member(a, "m1")["status"] == "defaulted"
    assert member(a, "m1")["partner"]["sys_id"] == "00:00:00:00:00:00"
    wire.restore()
    back = wire.now
    wire.run_until(back + 3.5)
    assert a.enabled_members() == ["m1", "m2"] == b.enabled_members()


def test_slow_partner_expires_after_90_seconds():
    a, b, wire = pair(a_rate="slow", b_rate="slow")
    wire.run_until(40.0)
    assert a.enabled_members() == ["m1", "m2"]
    wire.cut_link(a, "m1")
    cut = wire.now
    while member(a, "m1")["status"] == "current":
        wire.run_until(wire.now + 0.5)
    # current_while is 90 s from the last PDU, which came at most 30 s before the cut.
    assert cut + 60 <= wire.now <= cut + 90.5
    assert member(a, "m1")["status"] == "expired"


def test_transmit_rate_follows_the_partners_timeout():
    a, b, wire = pair(a_rate="fast", b_rate="slow")
    wire.run_until(10.0)
    start = wire.now
    wire.run_until(start + 60.0)
    # b must answer a's short timeout every second; a may talk to b every 30 s.
    b_sent = [t for t in tx_times(wire, b, "m1") if t > start]
    a_sent = [t for t in tx_times(wire, a, "m1") if t > start]
    assert 58 <= len(b_sent) <= 62
    assert 1 <= len(a_sent) <= 3
    assert a.enabled_members() == ["m1", "m2"] == b.enabled_members()


def test_never_more_than_three_pdus_per_second():
    a, b, wire = pair()
    wire.run_until(20.0)
    for e in (a, b):
        times = tx_times(wire, e, "m1")
        assert times, "nothing was sent"
        assert max(sum(1 for u in times if t <= u < t + 1.0) for t in times) <= 3


def test_fallback_active_backup_when_partner_is_silent():
    lonely = engine(A_SYS, fallback_ab=True)
    strict = engine(B_SYS)
    for e in (lonely, strict):
        for t in range(0, 80):            # 8 s, nobody answers
            e.run(t / 10)
    assert lonely.enabled_members() == ["m1", "m2"] and lonely.fallback_active()
    assert strict.enabled_members() == [] and not strict.fallback_active()
    assert member(lonely, "m1")["status"] == "defaulted"
    assert "fallback-ab: active" in render_show(lonely.show())


def test_fallback_gives_way_to_negotiation():
    a, b, wire = pair(fallback_ab=True)
    wire.cut_link(a, "m1")
    wire.cut_link(a, "m2")
    wire.run_until(8.0)
    assert a.fallback_active()
    wire.restore()
    wire.run_until(12.0)
    assert not a.fallback_active() and a.show()["negotiated"]
    assert a.enabled_members() == ["m1", "m2"]
    assert member(a, "m1")["partner"]["sys_id"] == B_SYS


def test_cable_looped_back_to_ourselves_is_never_enabled():
    a = engine(A_SYS)
    wire = MemoryWire([((a, "m1"), (a, "m2"))])
    wire.run_until(10.0)
    assert member(a, "m1")["partner"]["sys_id"] == A_SYS
    assert a.enabled_members() == [] and not a.show()["negotiated"]


def test_members_facing_two_systems_aggregate_with_one():
    a = engine(A_SYS)
    b, c = engine(B_SYS, members=("x",)), engine(C_SYS, members=("y",))
    wire = MemoryWire([((a, "m1"), (b, "x")), ((a, "m2"), (c, "y"))])
    wire.run_until(6.0)
    show = a.show()["members"]
    assert len(a.enabled_members()) == 1
    assert sorted(m["selected"] for m in show.values()) == ["SELECTED", "UNSELECTED"]
    # The lead goes to the partner ranked first: lower system id wins ties.
    assert a.enabled_members() == ["m1"] and b.enabled_members() == ["x"]
    assert c.enabled_members() == []


def test_malformed_input_is_counted_and_dropped():
    a, b, wire = pair()
    good = P.encode(P.Lacpdu(P.PortInfo(1, bytes.fromhex("020000000099"), 1, 1, 1,
                                        P.ACTIVITY), P.PortInfo()), bytes(6))
    junk = [b"", b"\xff" * 7, good[:60], good[:14] + b"\x01\x01\x09" + good[17:],
            good[:12] + b"\x88\x09\x07" + good[15:]]
    for frame in junk:
        a.process_packet("m1", frame, 0.0)
    a.process_packet("nonexistent", good, 0.0)
    bad = member(a, "m1")["counters"]["rx_bad"]
    assert bad == {"not-slow-protocols": 2, "short-pdu": 1, "bad-actor-tlv": 1,
                   "not-lacp-subtype": 1}
    assert a.show()["drops"] == {"unknown-member": 1}
    assert member(a, "m1")["counters"]["rx_pdus"] == 0
    wire.run_until(3.5)                     # and negotiation is unharmed
    assert a.enabled_members() == ["m1", "m2"]


def test_reconfigure_with_same_settings_keeps_the_bond_up():
    a, b, wire = pair()
    wire.run_until(4.0)
    a.configure({"system_id": A_SYS, "mode": "active", "rate": "fast",
                 "members": {"m1": {"port_id": 1}, "m2": {"port_id": 2}}})
    assert a.enabled_members() == ["m1", "m2"]
    a.configure({"system_id": A_SYS, "mode": "active", "rate": "fast",
                 "members": {"m1": {"port_id": 1}}})
    assert list(a.show()["members"]) == ["m1"] and a.member_enabled("m1")


def test_next_wakeup_is_enough_to_drive_the_engine():
    """Running only at next_wakeup() (as the daemon will) still negotiates."""
    a, b = engine(A_SYS), engine(B_SYS)
    peer = {(id(a), "m1"): (b, "m1"), (id(a), "m2"): (b, "m2"),
            (id(b), "m1"): (a, "m1"), (id(b), "m2"): (a, "m2")}
    now, runs = 0.0, 0
    while now < 5.0:
        for e in (a, b):
            for port, frame in e.run(now):
                far, far_port = peer[(id(e), port)]
                far.process_packet(far_port, frame, now)
        now = max(now + 1e-3, min(a.next_wakeup(), b.next_wakeup()))
        runs += 1
    assert a.enabled_members() == ["m1", "m2"] == b.enabled_members()
    assert runs < 100


def test_render_looks_like_ovs_appctl_lacp_show():
    a, b, wire = pair()
    wire.run_until(4.0)
    text = render_show(a.show())
    assert text.startswith("---- bond0 ----\n  status: active negotiated\n")
    assert f"  sys_id: {A_SYS}\n" in text
    assert "member: m1: current attached\n" in text
    assert f"  partner sys_id: {B_SYS}\n" in text
    assert "  actor state: activity timeout aggregation synchronized collecting " \
           "distributing\n" in text


def test_carrier_loss_disables_a_member_at_once_and_its_return_renegotiates():
    a, b, wire = pair()
    wire.run_until(4.0)
    a.set_port_enabled("m1", False)
    wire.run_until(wire.now + 0.1)
    assert a.enabled_members() == ["m2"]
    assert member(a, "m1")["machines"] == {"receive": "PORT_DISABLED",
                                           "mux": "DETACHED", "periodic": "NO_PERIODIC"}
    down = wire.now
    sent_while_down = [t for t in tx_times(wire, a, "m1") if t > down]
    wire.run_until(down + 4.0)
    assert b.enabled_members() == ["m2"]          # b's partner on m1 expired
    assert not [t for t in tx_times(wire, a, "m1") if t > down] + sent_while_down
    a.set_port_enabled("m1", True)
    wire.run_until(wire.now + 3.5)
    assert a.enabled_members() == ["m1", "m2"] == b.enabled_members()
