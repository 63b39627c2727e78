"""NetFlow v5 and IPFIX exporters against pmacct's nfacctd, a second
independent collector: per-flow packets and IP-layer bytes, interfaces,
VLAN and MACs as nfacctd accounts them."""
import time

from helpers.collectors import flow_key, nfacctd, poll_until  # noqa: F401  (fixture)

from vswitch.export import FlowStats, IpfixExporter, NetflowV5Exporter, UdpSender
from vswitch.export.records import ip_layer_bytes


def test_nfacctd_accounts_netflow_v5_and_ipfix_records(nfacctd):
    base = time.time() - 60
    netflow, ipfix = NetflowV5Exporter(), IpfixExporter()
    netflow.configure({"targets": [nfacctd.target], "inactive_timeout": 5,
                       "ifindex_map": {1: 11, 2: 12}})
    ipfix.configure({"targets": [nfacctd.target], "inactive_timeout": 5,
                     "observation_domain_id": 3, "ifindex_map": {1: 21, 2: 22}})
    expected = {}
    for i in range(40):                     # 0-19 go as NetFlow v5, 20-39 as IPFIX
        engine, vlan = (netflow, 0) if i < 20 else (ipfix, 100 + i)
        key = flow_key(i, vlan=vlan)
        stats = FlowStats(key, i + 1, (i + 1) * (300 + i), base, base + 1)
        engine.add_flow_stats(stats, base + 1)
        mac = ("00:00:00:00:00:00", "00:00:00:00:00:00") if i < 20 else \
            (key.src_mac, key.dst_mac)
        ifaces = (11, 12) if i < 20 else (21, 22)
        expected[(key.src_ip, key.src_port)] = (i + 1, ip_layer_bytes(stats), ifaces,
                                                vlan, mac)
    sender = UdpSender()
    sender.send(netflow.run(base + 10) + ipfix.run(base + 10))

    def accounted():
        got = {}
        for r in nfacctd.flows():
            key = (r["ip_src"], r["port_src"])
            packets, octets = got.get(key, (0, 0))[:2]
            got[key] = (packets + r["packets"], octets + r["bytes"],
                        (r["iface_in"], r["iface_out"]), r["vlan"],
                        (r["mac_src"], r["mac_dst"]))
        return got
    poll_until(lambda: accounted() == expected, timeout=15)
    assert accounted() == expected
