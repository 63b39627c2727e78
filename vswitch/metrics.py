"""Prometheus metrics of a running switch (opt-in: `vswitchd --metrics 127.0.0.1:9477`).

Nothing is sampled in the background: SwitchCollector reads the live Switch
on every scrape, and the scrape is served by a small HTTP server on the
daemon's own asyncio loop, so it reads the switch from the one thread that
ever touches it (no locks, no torn reads of the slow path's state).

    host, port = parse_listen("127.0.0.1:9477")      # ValueError if malformed
    server = await start_metrics_server(switch, host, port)
    ...
    await stop_metrics_server(server)

The server answers `GET /metrics` (and HEAD) with the text exposition format,
404 for any other path, 405 for any other method.  A request head is at most
MAX_REQUEST_BYTES and must arrive within READ_TIMEOUT seconds; at most
MAX_CLIENTS connections are served at once, so a slow or hostile client
cannot hold the loop or pile up.  The address is loopback unless one is
written out explicitly (an IP literal); host names other than localhost are
refused, so a name that resolves elsewhere never opens the port to a network.

Families (counters end in _total; labels bridge, port, pmd, bond, member):
  vswitch_port_{rx,tx}_{packets,bytes,dropped}_total, vswitch_port_rx_errors_total
      (the datapath's rx_malformed), vswitch_port_link_up      -- dump-ports
  vswitch_datapath_*: packets, lookups (emc/megaflow hits, misses), upcalls,
      upcall drops, malformed, busy/idle time; megaflows, subtables, pmds gauges
  vswitch_pmd_*{pmd}: the same per poll thread, plus hit_rate  -- pmd-stats-show
  vswitch_openflow_connections{bridge}, vswitch_mac_table_entries{bridge}
  vswitch_bond_member_enabled{bridge,bond,member}               -- bond-show
  vswitch_metrics_collect_errors_total{section}: a section that failed to read
      (it is left out of that scrape; the rest is still served)
A family whose data the datapath does not provide is left out, not zeroed.
"""
import argparse
import asyncio
import ipaddress
import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

import vswitch

log = logging.getLogger("vswitch.metrics")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9477
MAX_REQUEST_BYTES = 8192  # request line + headers
READ_TIMEOUT = 5.0  # seconds for the whole request head, and again for sending the answer
MAX_CLIENTS = 16

# dump-ports column -> (family, help)
PORT_COUNTERS = (
    ("rx_packets", "vswitch_port_rx_packets", "Packets received on the port."),
    ("rx_bytes", "vswitch_port_rx_bytes", "Bytes received on the port."),
    ("rx_dropped", "vswitch_port_rx_dropped", "Packets received on the port and dropped."),
    ("tx_packets", "vswitch_port_tx_packets", "Packets sent on the port."),
    ("tx_bytes", "vswitch_port_tx_bytes", "Bytes sent on the port."),
    ("tx_dropped", "vswitch_port_tx_dropped", "Packets that could not be sent on the port."),
)

# datapath / poll-thread stat -> (family suffix, help, scale); one table for
# both: vswitch_datapath_<suffix>_total and vswitch_pmd_<suffix>_total{pmd}.
FASTPATH_COUNTERS = (
    ("packets", "packets", "Packets the fast path processed.", 1),
    ("batches", "batches", "Receive batches the fast path processed.", 1),
    ("emc_hits", "emc_hits", "Lookups that hit the exact-match cache.", 1),
    ("megaflow_hits", "megaflow_hits", "Lookups that hit a megaflow.", 1),
    ("misses", "misses", "Lookups that missed every megaflow.", 1),
    ("upcalls", "upcalls", "Misses sent up to the slow path.", 1),
    ("upcall_drops", "upcall_drops", "Misses dropped because the upcall ring was full.", 1),
    ("malformed", "malformed", "Frames the parser rejected.", 1),
    ("busy_cycles", "busy_cycles", "CPU cycles spent processing packets.", 1),
    ("idle_cycles", "idle_cycles", "CPU cycles spent polling without packets.", 1),
    ("busy_ns", "busy_seconds", "Time spent processing packets.", 1e-9),
    ("idle_ns", "idle_seconds", "Time spent polling without packets.", 1e-9),
)
DATAPATH_GAUGES = (
    ("n_flows", "vswitch_datapath_megaflows", "Megaflows installed in the datapath."),
    ("n_subtables", "vswitch_datapath_subtables", "Classifier subtables (distinct megaflow masks)."),
    ("n_pmds", "vswitch_datapath_pmds", "Poll threads running."),
)


class SwitchCollector(Collector):
    """Reads `switch` (vswitch.switch.Switch) on every collect().  Each section
    is read on its own: one that fails (a datapath without pmd_stats, a
    feature mid-reconfiguration) is logged, counted and left out."""

    def __init__(self, switch):
        self.switch = switch
        self.errors = {}  # section -> failures so far

    def describe(self):
        return []  # names are dynamic; and registering must not read the switch

    def collect(self):
        yield from self._section("build", self._build)
        yield from self._section("ports", self._ports)
        yield from self._section("datapath", self._datapath)
        yield from self._section("bridges", self._bridges)
        yield from self._section("bonds", self._bonds)
        if self.errors:
            fam = CounterMetricFamily("vswitch_metrics_collect_errors",
                                      "Scrapes in which a section of the metrics could not be read.",
                                      labels=["section"])
            for section, n in sorted(self.errors.items()):
                fam.add_metric([section], n)
            yield fam

    def _section(self, name, read):
        # Each section builds its families completely before any is yielded,
        # so a failure halfway never leaves a partial family in the output.
        try:
            families = list(read())
        except Exception as exc:
            self.errors[name] = self.errors.get(name, 0) + 1
            log.warning("metrics: %s not collected: %s: %s", name, type(exc).__name__, exc)
            return []
        return families

    # -- sections -------------------------------------------------------------------------
    @staticmethod
    def _build():
        info = GaugeMetricFamily("vswitch_build_info", "vswitchd's version (value is always 1).",
                                 labels=["version"])
        info.add_metric([vswitch.__version__], 1)
        yield info

    def _ports(self):
        sw = self.switch
        counters = {col: CounterMetricFamily(name, doc, labels=["bridge", "port"])
                    for col, name, doc in PORT_COUNTERS}
        errors = CounterMetricFamily("vswitch_port_rx_errors",
                                     "Frames received on the port that the datapath could not parse.",
                                     labels=["bridge", "port"])
        link = GaugeMetricFamily("vswitch_port_link_up",
                                 "1 if the port's netdev has carrier, 0 if not "
                                 "(absent while unknown).", labels=["bridge", "port"])
        for br in sorted(sw.bridges):
            for row in sw.dump_ports(br):
                labels = [br, row["port"]]
                for col, fam in counters.items():
                    fam.add_metric(labels, row[col])
                stats = sw.interface_statistics(row["port"])
                if "rx_malformed" in stats:
                    errors.add_metric(labels, stats["rx_malformed"])
                state = sw.netdev_column("Interface", "link_state", row["port"])
                if state in ("up", "down"):
                    link.add_metric(labels, 1 if state == "up" else 0)
        yield from counters.values()
        for fam in (errors, link):
            if fam.samples:
                yield fam

    def _datapath_stats(self):
        """Switch.pmd_stats(); a datapath without per-thread figures still
        gives its totals (whatever keys it has)."""
        try:
            return self.switch.pmd_stats()
        except (AttributeError, KeyError, TypeError):
            stats = dict(self.switch.dp.stats() or {})
            stats["pmds"] = []
            return stats

    def _datapath(self):
        st = self._datapath_stats()
        for key, suffix, doc, scale in FASTPATH_COUNTERS:
            if st.get(key) is not None:
                fam = CounterMetricFamily(f"vswitch_datapath_{suffix}", f"{doc} All poll threads.")
                fam.add_metric([], st[key] * scale)
                yield fam
        for key, name, doc in DATAPATH_GAUGES:
            if st.get(key) is not None:
                yield GaugeMetricFamily(name, doc, value=st[key])
        pmds = st.get("pmds") or []
        for key, suffix, doc, scale in FASTPATH_COUNTERS:
            fam = CounterMetricFamily(f"vswitch_pmd_{suffix}", doc, labels=["pmd"])
            for i, pmd in enumerate(pmds):
                if pmd.get(key) is not None:
                    fam.add_metric([str(i)], pmd[key] * scale)
            if fam.samples:
                yield fam
        rate = GaugeMetricFamily("vswitch_pmd_hit_rate",
                                 "Share of the poll thread's lookups (since start) that hit "
                                 "the EMC or a megaflow; absent before its first lookup.",
                                 labels=["pmd"])
        cpu = GaugeMetricFamily("vswitch_pmd_cpu", "CPU the poll thread is pinned to (-1: not pinned).",
                                labels=["pmd"])
        for i, pmd in enumerate(pmds):
            if pmd.get("hit_rate") is not None:
                rate.add_metric([str(i)], pmd["hit_rate"])
            if pmd.get("cpu") is not None:
                cpu.add_metric([str(i)], pmd["cpu"])
        for fam in (rate, cpu):
            if fam.samples:
                yield fam

    def _bridges(self):
        sw = self.switch
        conns = GaugeMetricFamily("vswitch_openflow_connections",
                                  "OpenFlow controllers connected to the bridge.", labels=["bridge"])
        macs = GaugeMetricFamily("vswitch_mac_table_entries",
                                 "Entries in the bridge's MAC learning table.", labels=["bridge"])
        for name in sorted(sw.bridges):
            ofs = sw.of.get(name)
            if ofs is not None:
                conns.add_metric([name], len(ofs.connected))
            macs.add_metric([name], len(sw.bridges[name].macs.entries))
        yield conns
        yield macs

    def _bonds(self):
        # Switch.feature_show("bond") bridge by bridge, to know each bond's bridge.
        fam = GaugeMetricFamily("vswitch_bond_member_enabled",
                                "1 if the bond member is enabled (carries traffic), 0 if not.",
                                labels=["bridge", "bond", "member"])
        for name in sorted(self.switch.bridges):
            for bond in self.switch.bridges[name].show("bond"):
                for member, m in sorted(bond.get("members", {}).items()):
                    fam.add_metric([name, bond["name"], member], 1 if m.get("enabled") else 0)
        if fam.samples:
            yield fam


def make_registry(switch):
    """A registry of its own (not prometheus_client's global one) holding the
    switch's collector only."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SwitchCollector(switch))
    return registry


# ------------------------------------------------------------------ listen address
def parse_listen(text):
    """`--metrics` argument -> (host, port).

    "9477" or ":9477" -> ("127.0.0.1", 9477); "127.0.0.1:9477"; "[::1]:9477";
    "localhost:9477" -> ("127.0.0.1", 9477).  Any other host must be an IP
    literal (writing it out is the explicit consent to listen beyond
    loopback: "0.0.0.0:9477", "[::]:9477", "10.0.0.5:9477"); host names are
    refused.  Raises ValueError with a message fit for the command line."""
    orig = text
    text = (text or "").strip()
    if not text:
        raise ValueError("metrics address is empty: expected [HOST:]PORT, e.g. 127.0.0.1:9477")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"metrics address {orig!r}: an IPv6 address is written [ADDR]:PORT, "
                             "e.g. [::1]:9477")
        port_text = rest[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"metrics address {orig!r}: put an IPv6 address in brackets, "
                             "e.g. [::1]:9477")
    else:
        host, port_text = "", text
    try:
        port = int(port_text, 10)
    except ValueError:
        raise ValueError(f"metrics address {orig!r}: port {port_text!r} is not a number "
                         "(expected [HOST:]PORT, e.g. 127.0.0.1:9477)") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"metrics address {orig!r}: port {port} is not in 1-65535")
    if host in ("", "localhost"):
        return DEFAULT_HOST, port
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"metrics address {orig!r}: {host!r} is not an IP address "
                         "(give 127.0.0.1, [::1], or an explicit address to listen on)") from None
    return host, port


def listen_argument(text):
    """parse_listen for argparse's type=: its message, not "invalid value"."""
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# ------------------------------------------------------------------ HTTP server
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


def _response(status, body=b"", content_type="text/plain; charset=utf-8", head_only=False, extra=()):
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", "Connection: close", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


class MetricsServer:
    """The HTTP side: one request per connection, answered on the loop."""

    def __init__(self, registry, read_timeout=READ_TIMEOUT):
        self.registry = registry
        self.read_timeout = read_timeout
        self.writers = set()  # connections being served
        self.server = None  # asyncio.Server

    async def handle(self, reader, writer):
        if len(self.writers) >= MAX_CLIENTS:
            writer.transport.abort()  # too many slow ones already: no answer
            return
        self.writers.add(writer)
        try:
            answer = await self._answer(reader)
            if answer is not None:
                writer.write(answer)
                await asyncio.wait_for(writer.drain(), self.read_timeout)
        except (TimeoutError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, would not read, or the loop is shutting down
        except Exception:
            log.exception("metrics: request failed")
        finally:
            self.writers.discard(writer)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # the client is not reading: drop what is left
            else:
                writer.close()

    @property
    def clients(self):
        return len(self.writers)

    def abort_clients(self):
        for writer in list(self.writers):
            writer.transport.abort()

    async def _answer(self, reader):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout)
        except TimeoutError:
            return _response(408, b"request timeout\n")
        except asyncio.LimitOverrunError:
            return _response(431, b"request too large\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None  # connected and closed (a port probe)
            head = exc.partial  # HTTP/1.0 client that half-closed: take what came
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _response(400, b"bad request\n")
        method, target, _ = parts
        path = target.split("?", 1)[0]
        if path != "/metrics":
            return _response(404, b"not found: metrics are at /metrics\n", head_only=method == "HEAD")
        if method not in ("GET", "HEAD"):
            return _response(405, b"method not allowed\n", extra=("Allow: GET, HEAD",))
        try:
            body = generate_latest(self.registry)  # reads the switch, here on the loop
        except Exception:
            log.exception("metrics: generating the exposition failed")
            return _response(500, b"could not collect metrics\n", head_only=method == "HEAD")
        return _response(200, body, CONTENT_TYPE_LATEST, head_only=method == "HEAD")


async def start_metrics_server(switch, host=DEFAULT_HOST, port=DEFAULT_PORT, *, registry=None,
                               read_timeout=READ_TIMEOUT):
    """Serves `switch`'s metrics at http://HOST:PORT/metrics on the running
    loop; returns the asyncio.Server (close() + await wait_closed() to stop).
    port 0 picks a free port (see server.sockets[0].getsockname()).  Raises
    OSError if the address cannot be bound."""
    if not host:
        host = DEFAULT_HOST  # never "all interfaces" by omission
    metrics = MetricsServer(registry if registry is not None else make_registry(switch), read_timeout)
    try:
        server = await asyncio.start_server(metrics.handle, host, port,
                                            limit=MAX_REQUEST_BYTES, reuse_address=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot serve metrics on {_hostport((host, port))}: "
                                 f"{exc.strerror or exc}") from None
    metrics.server = server
    server.metrics = metrics
    where = server.sockets[0].getsockname()
    if is_loopback(host):
        log.info("metrics on http://%s/metrics", _hostport(where))
    else:
        log.warning("metrics on http://%s/metrics: reachable beyond this host, without "
                    "authentication", _hostport(where))
    return server


async def stop_metrics_server(server):
    """Stops listening and drops any connection still being served."""
    server.close()
    server.metrics.abort_clients()
    await server.wait_closed()


def _hostport(sockname):
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
