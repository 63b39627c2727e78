"""Controller target strings -> (kind, address), as ovs-vsctl set-controller
takes them: tcp:IP[:PORT], ssl:IP[:PORT], unix:PATH (active); ptcp:[PORT][:IP],
pssl:[PORT][:IP], punix:PATH (passive).  ptcp and pssl bind 127.0.0.1 unless
an address is given (not every interface, as OVS would: a controller port
should not be open to the world by default).  ssl and pssl are TCP with
`tls` set: the connection manager wraps them in TLS with the SSL row's
key, certificate and CA certificate (conn/tls.py)."""
from dataclasses import dataclass

DEFAULT_PORT = 6653


@dataclass(frozen=True)
class Target:
    text: str
    active: bool
    kind: str        # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""
    tls: bool = False  # ssl: / pssl:


class TargetError(ValueError):
    pass


def parse(text):
    method, _, rest = text.partition(":")
    if method in ("unix", "punix"):
        return Target(text, method == "unix", "unix", path=rest)
    if method in ("tcp", "ssl"):
        host, port = _host_port(rest)
        return Target(text, True, "tcp", host, port or DEFAULT_PORT, tls=method == "ssl")
    if method in ("ptcp", "pssl"):
        port, _, host = rest.partition(":")
        return Target(text, False, "tcp", (host or "127.0.0.1").strip("[]"), int(port or DEFAULT_PORT),
                      tls=method == "pssl")
    raise TargetError(f"{text}: unknown connection method {method}")


def _host_port(rest):
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        return host, int(tail[1:]) if tail.startswith(":") else None
    if rest.count(":") == 1:
        host, _, port = rest.partition(":")
        return host, int(port)
    return rest, None
