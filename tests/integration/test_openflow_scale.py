"""The real ovs-ofctl against vswitchd with thousands of rules: add-flows from
a file, dump-flows, loose and strict deletes by prefix, and lookups (ofproto
trace) that must pick the highest-priority rule among them."""
import re

import pytest

from helpers import netns
from helpers.vswitchd import have, running_vswitchd

pytestmark = [pytest.mark.timeout(300), pytest.mark.skipif(not have("ovs-ofctl"), reason="needs ovs-ofctl")]

N_RULES = 5000


def ip(v):
    return ".".join(str((v >> s) & 0xFF) for s in (24, 16, 8, 0))


@pytest.fixture
def bridge(tmp_path):
    with netns.namespace("ofsc") as ns, running_vswitchd(ns, tmp_path) as vs:
        vs.vsctl("add-br", "br0")
        yield vs, f"unix:{vs.rundir}/br0.mgmt"


def ofctl(target, command, *args, options=()):
    proc = netns.run(None, "ovs-ofctl", "-O", "OpenFlow13", *options, command, target, *args, check=False,
                     timeout=240)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def dumped(target, *args):
    return [line for line in ofctl(target, "dump-flows", *args).splitlines() if "actions=" in line]


def test_thousands_of_rules_add_dump_delete(bridge, tmp_path):
    vs, target = bridge
    path = tmp_path / "rules.flows"
    # rule i: 10.0.x.y/32 port i; every 10th also has a /24 twin at lower priority
    lines = [f"priority={100 + i % 50},tcp,nw_dst={ip(0x0A000000 + i)},tp_dst={1 + i},actions=output:{1 + i % 3}"
             for i in range(N_RULES)]
    lines += [f"priority=10,tcp,nw_dst={ip(0x0A000000 + i)}/24,actions=drop" for i in range(0, N_RULES, 256)]
    path.write_text("\n".join(lines) + "\n")
    ofctl(target, "add-flows", str(path))
    assert len(dumped(target)) == len(lines)

    # a lookup: the /32+port rule beats the /24; another port falls to the /24
    trace = "\n".join(vs.json("trace", "br0", "tcp,nw_dst=10.0.0.7,tp_dst=8")["trace"])
    assert re.search(r"matched .*nw_dst=10\.0\.0\.7,tp_dst=8", trace), trace
    trace = "\n".join(vs.json("trace", "br0", "tcp,nw_dst=10.0.0.7,tp_dst=9")["trace"])
    assert re.search(r"matched .*nw_dst=10\.0\.0\.0/24", trace), trace

    # loose delete by prefix: exactly the rules inside 10.0.1.0/24 (the /24 twin too)
    ofctl(target, "del-flows", "tcp,nw_dst=10.0.1.0/24")
    left = dumped(target)
    assert len(left) == len(lines) - 256 - 1
    assert not any("nw_dst=10.0.1." in line for line in left)

    # strict delete of one rule; a strict delete with the wrong priority deletes nothing
    ofctl(target, "del-flows", f"priority={100 + 7 % 50},tcp,nw_dst=10.0.0.7,tp_dst=8", options=["--strict"])
    ofctl(target, "del-flows", "priority=1,tcp,nw_dst=10.0.0.9,tp_dst=10", options=["--strict"])
    assert len(dumped(target)) == len(left) - 1
    assert dumped(target, "tcp,nw_dst=10.0.0.7") == []
    assert len(dumped(target, "tcp,nw_dst=10.0.0.9")) == 1
