"""The revalidator walks the datapath one dump chunk at a time
(Switch.revalidate_steps, one chunk per event-loop turn in the daemon):
megaflows the slow path does not know are deleted chunk by chunk, and a
megaflow installed between two chunks survives the round."""
from helpers.fake_datapath import Clock, FakeDatapath, configure
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from vswitch.datapath import dpif, flowkey
from vswitch.switch import Switch

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
STRAYS = 2 * dpif.DUMP_CHUNK + 10


def frame(src, dst, sport):
    return bytes(Ether(src=src, dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=53))


def deliver(sw, name, data):
    sw.dp.receive(sw.ifaces[name].dp_port, data)
    sw.handle_upcalls()


def test_revalidation_is_chunked_and_keeps_flows_installed_between_chunks():
    dp, clock = FakeDatapath(), Clock()
    clock.now = dpif.now_ns() / 1e9      # the megaflows' idle time is read on the datapath's clock
    sw = Switch(dp, clock=clock)
    try:
        configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
        deliver(sw, "p2", frame(MAC_B, MAC_A, 9))
        assert len(dp.flows) == 1
        mask = flowkey.pack({"in_port": 0xFFFFFFFF, "tp_src": 0xFFFF})
        strays = {(flowkey.pack({"in_port": 77, "tp_src": i}), mask) for i in range(STRAYS)}
        for key, m in strays:
            dp.flow_put(key, m, [("output", 1)])
        steps = sw.revalidate_steps()
        next(steps)
        left = strays & set(dp.flows)
        assert 0 < len(left) < STRAYS          # one chunk's worth handled, not all
        assert STRAYS - len(left) <= dpif.DUMP_CHUNK
        deliver(sw, "p1", frame(MAC_A, MAC_B, 1000))   # an upcall between two chunks
        added = {fid for fid, f in dp.flows.items() if f.key.get("in_port") == sw.ifaces["p1"].dp_port}
        assert len(added) == 1
        rest = sum(1 for _ in steps)
        assert rest == (STRAYS + 1) // dpif.DUMP_CHUNK  # the remaining chunks, one step each
        assert not strays & set(dp.flows)
        assert added <= set(dp.flows)
        sw.revalidate()                  # the next round sees it and keeps it (in use)
        assert added <= set(dp.flows)
    finally:
        sw.close()
