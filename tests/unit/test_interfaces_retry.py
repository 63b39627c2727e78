"""A port whose netdev exists but cannot be opened is retried when the
netdev changes, not on every link report: a failed attempt on a packet
socket toggles the promiscuous flag, which the kernel reports as a link
change with the same state, and retrying on those made the daemon retry
without end (and stop answering vsctl)."""
import errno

from vswitch.datapath.dpif import PortOpenError
from vswitch.interfaces import Interface, Interfaces
from vswitch.linkmon import LinkEvent


class RefusingDatapath:
    """A datapath whose add_port always fails, counting the attempts."""

    def __init__(self):
        self.attempts = 0

    def add_port(self, port_no, driver, name, options=None):
        self.attempts += 1
        raise PortOpenError(errno.ENOENT, "open tc tier object")


def link(ifindex=7, **changes):
    fields = dict(name="p1", ifindex=ifindex, exists=True, admin_up=True, carrier=True,
                  mac="02:00:00:00:00:01", mtu=1500)
    fields.update(changes)
    return LinkEvent(**fields)


def failed_port():
    dp = RefusingDatapath()
    ifaces = Interfaces(dp)
    iface = Interface("p1", "br0", "p1", "afpacket", options={"tc-offload": "true"})
    ifaces.by_name["p1"] = iface
    ifaces.link_event(link())  # the netdev as the monitor first reports it
    return dp, ifaces, iface


def test_the_same_state_reported_again_is_not_retried():
    dp, ifaces, iface = failed_port()
    first = dp.attempts
    assert first == 1 and not iface.open
    assert "could not open network device p1" in iface.error
    for _ in range(5):  # what promiscuous on/off reports look like
        ifaces.link_event(link())
    assert dp.attempts == first


def test_a_change_of_the_netdev_is_retried():
    dp, ifaces, _ = failed_port()
    for change in (dict(mtu=1400), dict(admin_up=False), dict(ifindex=8)):
        before = dp.attempts
        ifaces.link_event(link(**change))
        assert dp.attempts > before, change


def test_a_netdev_that_comes_back_is_retried():
    dp, ifaces, _ = failed_port()
    ifaces.link_event(link(exists=False, admin_up=False, carrier=False))
    before = dp.attempts
    ifaces.link_event(link())
    assert dp.attempts > before
