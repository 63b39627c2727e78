"""Bridge, port and interface names are checked as Linux checks netdev names
before they reach the fast path or the file system (RUNDIR/BR.mgmt)."""
import pytest

from vswitch.config.commands import CommandError, execute
from vswitch.config.schema import empty_config


@pytest.mark.parametrize("name", ["../x", "a b", "", "a/b", ".", "..", "x:1", "tab\tname",
                                  "rbvictimtap0000X", "é" * 8])
def test_bad_bridge_and_interface_names_are_refused_and_change_nothing(name):
    base, _ = execute(empty_config(), [["add-br", "br0"]])
    with pytest.raises(CommandError) as err:
        execute(base, [["add-br", name]])
    assert "invalid name" in str(err.value) and (name in str(err.value) or not name)
    with pytest.raises(CommandError) as err:
        execute(base, [["add-bond", "br0", "bond0", "m1", name]])
    assert "invalid name" in str(err.value)
    assert execute(base, [["list-br"]])[1] == [["br0"]]


def test_fifteen_bytes_is_the_limit():
    config, _ = execute(empty_config(), [["add-br", "b" * 15]])
    assert execute(config, [["list-br"]])[1] == [["b" * 15]]


def test_port_names_may_be_longer_than_a_netdev_but_not_unsafe():
    config, _ = execute(empty_config(), [["add-br", "br0"]])
    config, _ = execute(config, [["add-bond", "br0", "uplink-bond-to-tor1", "m1", "m2"]])
    for bad in ("../up", "up link", "p" * 256):
        with pytest.raises(CommandError):
            execute(config, [["add-bond", "br0", bad, "m3", "m4"]])
