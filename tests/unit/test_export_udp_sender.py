"""UdpSender delivers run() output on loopback and counts, never raises, errors."""
import socket

from vswitch.export import UdpSender


def test_sends_each_datagram_to_its_target_and_counts_errors():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        for s in (a, b):
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
        ta, tb = a.getsockname(), b.getsockname()
        sender = UdpSender()
        try:
            ok = sender.send([(ta, b"one"), (tb, b"two"), (ta, b"three"),
                              (tb, b"x" * 70000)])      # too long for UDP
            assert ok == 3
            assert [a.recv(100), a.recv(100), b.recv(100)] == [b"one", b"three", b"two"]
            shown = sender.show()
            assert shown["sent"] == {f"127.0.0.1:{ta[1]}": 2, f"127.0.0.1:{tb[1]}": 1}
            assert sum(shown["errors"].values()) == 1
        finally:
            sender.close()
