"""CFM MEPs over in-memory links with a fake clock: loss, recovery, and
every fault reason."""
import pytest
from helpers.rawsock import MemoryWire

from vswitch.cfm import CfmEngine, ccm as C, render_show


def cfm(port="p", **mep):
    return CfmEngine({"interfaces": {port: {"mpid": 1, **mep}}})


def pair(a=None, b=None, interval_ms=1000):
    a = cfm(**{"mpid": 1, "interval_ms": interval_ms, **(a or {})})
    b = cfm(**{"mpid": 2, "interval_ms": interval_ms, **(b or {})})
    return a, b, MemoryWire([((a, "p"), (b, "p"))])


def mep(engine, port="p"):
    return engine.show()["interfaces"][port]


def first_time(wire, condition, limit):
    """Advance the wire until `condition()`; return the time it became true."""
    while not condition():
        assert wire.now < limit, "condition never became true"
        wire.run_until(wire.now + wire.step)
    return wire.now


def test_two_meps_see_each_other_without_fault():
    a, b, wire = pair()
    wire.run_until(10.0)
    assert mep(a)["fault"] == [] and mep(b)["fault"] == []
    assert mep(a)["remote_mpids"] == [2] and mep(b)["remote_mpids"] == [1]
    assert mep(a)["remote_meps"][2]["seq_errors"] == 0
    assert 10 <= mep(a)["seq"] <= 11              # one CCM a second
    assert mep(b)["remote_meps"][1]["seq"] == mep(a)["seq"]


def test_loss_raises_recv_after_three_and_a_half_intervals_and_rdi_on_the_far_side():
    a, b, wire = pair(interval_ms=100)
    wire.run_until(1.0)
    wire.cut.add((id(a), "p"))                     # a -> b lost, b -> a still fine
    cut = wire.now
    lost = first_time(wire, lambda: "recv" in mep(b)["fault"], cut + 1)
    # The last CCM left at most one interval before the cut.
    assert cut + 0.35 - 0.1 - 1e-6 <= lost <= cut + 0.35 + 1e-6
    assert mep(b)["remote_meps"][1]["state"] == "failed"
    assert mep(b)["rdi_tx"]
    wire.run_until(wire.now + 0.15)                # b's next CCM carries RDI
    assert mep(a)["fault"] == ["rdi"]
    wire.restore()                                 # recovery
    wire.run_until(wire.now + 0.25)
    assert mep(b)["fault"] == [] and mep(a)["fault"] == []
    assert mep(b)["remote_meps"][1]["seq_errors"] == 1    # the gap was noticed


def test_configured_remote_mep_never_heard_is_a_fault_only_after_35_intervals():
    lonely = cfm(remote_mpids=[2])
    for t in range(0, 34):
        lonely.run(t / 10)
    assert mep(lonely)["fault"] == []
    assert mep(lonely)["remote_meps"][2]["state"] == "start"
    lonely.run(3.5)
    assert mep(lonely)["fault"] == ["recv"]
    assert mep(lonely)["remote_meps"][2]["state"] == "failed"


def test_learning_mep_with_nobody_around_reports_recv():
    lonely = cfm()
    lonely.run(0.0)
    lonely.run(3.4)
    assert mep(lonely)["fault"] == []
    lonely.run(3.5)
    assert mep(lonely)["fault"] == ["recv"] and mep(lonely)["rdi_tx"]


@pytest.mark.parametrize("a_cfg,b_cfg,a_faults,b_faults", [
    ({}, {"ma_name": "other"}, {"maid"}, {"maid"}),
    ({}, {"md_format": "none", "md_name": ""}, {"maid"}, {"maid"}),
    ({"level": 3}, {"level": 0}, {"level"}, set()),   # b ignores a's higher level
    # b (100 ms) also times out waiting for a good CCM after 350 ms.
    ({}, {"interval_ms": 100}, {"interval"}, {"interval", "recv"}),
    ({"remote_mpids": [5]}, {}, {"unexpected-mpid"}, set()),
    ({}, {"mpid": 1}, {"loopback"}, {"loopback"}),
])
def test_fault_reasons(a_cfg, b_cfg, a_faults, b_faults):
    a, b, wire = pair(a_cfg, b_cfg)
    wire.run_until(2.0)                 # before any 3.5-interval loss timer ends
    assert set(mep(a)["fault"]) - {"rdi"} == a_faults
    assert set(mep(b)["fault"]) - {"rdi"} == b_faults
    assert mep(a)["rdi_tx"] == bool(a_faults)


def test_higher_level_ccm_passes_by_without_fault():
    a, b, wire = pair({"level": 3}, {"level": 0})
    wire.run_until(2.0)
    assert mep(b)["counters"]["higher_level"] >= 2
    assert mep(b)["remote_meps"] == {}


def test_cross_connect_fault_clears_35_intervals_after_the_last_bad_ccm():
    a, b, wire = pair(b={"ma_name": "other"})
    wire.run_until(2.0)
    assert "maid" in mep(a)["fault"]
    b.configure({"interfaces": {"p": {"mpid": 2}}})       # fixed: default MAID
    fixed = wire.now
    cleared = first_time(wire, lambda: "maid" not in mep(a)["fault"], fixed + 5)
    assert fixed + 2.5 - 1e-6 <= cleared <= fixed + 3.5 + 1e-6
    wire.run_until(wire.now + 4)
    assert mep(a)["fault"] == [] and mep(a)["remote_mpids"] == [2]


def test_overflow_of_learned_remote_meps():
    a = cfm()
    maid = C.Maid().encode()
    for mpid in range(2, 2 + 257):
        a.process_packet("p", C.encode(C.Ccm(mpid=mpid, seq=1, interval=4, maid=maid),
                                       bytes(6)), 0.5)
    assert len(mep(a)["remote_meps"]) == 256
    assert "overflow" in mep(a)["fault"]


def test_malformed_ccms_are_counted_and_do_not_disturb_the_mep():
    a, b, wire = pair()
    wire.run_until(2.0)
    for junk in (b"", b"\x00" * 13, b"\x00" * 12 + b"\x89\x02\x00\x03\x00\x04",
                 b"\x00" * 12 + b"\x89\x02\x00\x01\x04\x46" + b"\x00" * 10):
        a.process_packet("p", junk, wire.now)
    a.process_packet("elsewhere", b"\x00" * 60, wire.now)
    assert mep(a)["counters"]["drops"] == {"not-cfm": 2, "not-ccm": 1, "short-pdu": 1}
    assert a.show()["drops"] == {"no-mep-on-port": 1}
    wire.run_until(6.0)
    assert mep(a)["fault"] == [] and mep(a)["remote_mpids"] == [2]


def test_every_interval_code_paces_transmission():
    for code, seconds in C.INTERVALS.items():
        e = cfm(interval_ms=seconds * 1000)
        assert mep(e)["interval_ms"] == pytest.approx(seconds * 1000)
        t, sent = 0.0, 0
        while t < seconds * 10 - 1e-9:
            sent += len(e.run(t))
            t = e.next_wakeup()
        assert sent == 10, code


def test_interval_between_codes_rounds_down_like_ovs():
    assert C.interval_code(250) == 3 and C.interval_code(1) == 1
    assert C.interval_code(600000) == 7 and C.interval_code(10**9) == 7


def test_extended_mode_uses_64_bit_mpids_and_opstate():
    a, b, wire = pair({"mpid": 100000, "extended": True, "opup": False},
                      {"mpid": 70000, "extended": True})
    wire.run_until(2.0)
    assert mep(b)["remote_mpids"] == [100000]
    assert mep(b)["remote_opstate"] == "down" and mep(a)["remote_opstate"] == "up"
    frame = [f for _t, e, _p, f in wire.sent if e is a][0]
    assert frame[:6] == C.OVS_EXTENDED_GROUP


def test_reconfigure_unchanged_keeps_state_and_render_looks_like_ovs():
    a, b, wire = pair()
    wire.run_until(3.0)
    a.configure({"interfaces": {"p": {"mpid": 1, "interval_ms": 1000}}})
    assert mep(a)["remote_mpids"] == [2]
    text = render_show(a.show())
    assert text.startswith("---- p ----\nMPID 1:\n")
    assert "Remote MPID 2\n" in text and "fault:" not in text
    assert "  interval: 1000ms\n" in text
    wire.cut_link(a, "p")
    wire.run_until(8.0)
    assert "  fault: recv\n" in render_show(a.show())


def test_bad_settings_are_refused():
    for bad in ({"mpid": 0}, {"mpid": 8192}, {"mpid": 1, "level": 8},
                {"mpid": 1, "ma_format": "vid", "ma_name": 5000}):
        with pytest.raises(ValueError):
            CfmEngine({"interfaces": {"p": bad}})
