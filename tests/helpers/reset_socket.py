"""A loopback TCP connection whose peer has reset it: the one place tests
get a socket whose next read fails with ECONNRESET (a socketpair cannot be
reset).  The peer closes with SO_LINGER {on, 0 s}, which sends RST instead
of FIN.

    with reset_connection() as sock:     # sock.recv() now raises ConnectionResetError
"""
import contextlib
import select
import socket
import struct

LINGER_ABORT = struct.pack("ii", 1, 0)   # l_onoff=1, l_linger=0: close sends RST
RST_WAIT_S = 2.0


@contextlib.contextmanager
def reset_connection():
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname())
    sock, _ = listener.accept()
    listener.close()
    try:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
        peer.close()
        _wait_readable(sock)
        yield sock
    finally:
        sock.close()


def _wait_readable(sock):
    """Until the RST has arrived (the socket polls readable)."""
    if not select.select([sock], [], [], RST_WAIT_S)[0]:
        raise AssertionError("no RST arrived on the loopback connection")
