"""Real flow collectors on loopback for the exporter tests.

Each collector runs in its own temporary directory, listens on 127.0.0.1 on
a free port, and is stopped by the pid this module started (plus the
children that pid forked, found through /proc), never by name.
  NfcapdCollector   nfdump's nfcapd (NetFlow v5 and IPFIX), read with nfdump
  PmacctCollector   pmacct's sfacctd (sFlow v5, with its counter log) or
                    nfacctd (NetFlow v5/IPFIX), print plugin
  LoopbackCapture   dumpcap on lo, decoded afterwards with tshark
Use them as context managers; the pytest fixtures at the bottom wrap them.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess

import pytest

from helpers.wait import wait_until

TIMEOUT = 20.0          # generous: CI is a loaded 2-core machine


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_ns(ns: str | None, argv: list[str]) -> list[str]:
    return (["ip", "netns", "exec", ns] if ns else []) + argv


def udp_socket_state(port: int, ns: str | None = None) -> dict | None:
    """rx_queue and drops of the IPv4 UDP socket bound to `port` (in
    namespace `ns`, else here), or None."""
    if ns:
        lines = subprocess.run(_in_ns(ns, ["cat", "/proc/net/udp"]), capture_output=True,
                               text=True, timeout=TIMEOUT, check=True).stdout.splitlines()
    else:
        with open("/proc/net/udp") as f:
            lines = f.read().splitlines()
    for line in lines[1:]:
        cols = line.split()
        if int(cols[1].split(":")[1], 16) == port:
            return {"rx_queue": int(cols[4].split(":")[1], 16), "drops": int(cols[12])}
    return None


def wait_for(condition, what: str, timeout: float = TIMEOUT, interval: float = 0.05):
    return wait_until(condition, timeout, interval, what)


def poll_until(condition, timeout: float = TIMEOUT) -> bool:
    """Like wait_for but returns False on timeout, so that the test's own
    assert shows what differs."""
    try:
        return bool(wait_for(condition, "condition", timeout))
    except TimeoutError:
        return False


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


class ManagedProcess:
    """A process we started; stop() signals it (and its children) by pid."""

    def __init__(self, argv: list[str], log_path: str, cwd: str | None = None):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=cwd)

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        kids = _children(self.proc.pid) if self.alive() else []
        try:
            if self.alive():
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            for kid in kids:      # children we forked, if they outlive the parent
                try:
                    os.kill(kid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        finally:
            self._log.close()
        return self.proc.returncode


def wait_until_listening(proc: ManagedProcess, port: int, name: str, ns: str | None = None) -> None:
    def ready():
        if not proc.alive():
            raise RuntimeError(f"{name} exited: {proc.log()}")
        return udp_socket_state(port, ns) is not None
    wait_for(ready, f"{name} to bind 127.0.0.1:{port}")


def wait_until_drained(port: int, ns: str | None = None) -> dict:
    """Waits until the collector has read every queued datagram."""
    return wait_for(lambda: (s := udp_socket_state(port, ns)) and s["rx_queue"] == 0 and s,
                    f"udp port {port} to drain")


class NfcapdCollector:
    """nfcapd writing into `workdir` (run in namespace `ns`, e.g. the
    switch's, else here); stop() (SIGTERM) flushes its file."""

    def __init__(self, workdir: str, ns: str | None = None):
        self.ns = ns
        self.dir = os.path.join(workdir, "flows")
        os.makedirs(self.dir)
        self.port = free_udp_port()
        self.target = f"127.0.0.1:{self.port}"
        self.summary = ""
        self.process = None
        self.socket_drops = 0

    def __enter__(self):
        self.process = ManagedProcess(
            _in_ns(self.ns, ["nfcapd", "-b", "127.0.0.1", "-p", str(self.port), "-w", self.dir,
                             "-t", "3600"]),
            os.path.join(os.path.dirname(self.dir), "nfcapd.log"))
        wait_until_listening(self.process, self.port, "nfcapd", self.ns)
        return self

    def stop(self) -> str:
        """Waits for the socket to drain, stops nfcapd, returns its log."""
        if self.process.alive():
            self.socket_drops = wait_until_drained(self.port, self.ns)["drops"]
            self.process.stop(signal.SIGTERM)
        self.summary = self.process.log()
        return self.summary

    def __exit__(self, *exc):
        self.stop()

    def flows(self) -> list[dict]:
        out = subprocess.run(["nfdump", "-R", self.dir, "-o", "json"], capture_output=True,
                             text=True, timeout=TIMEOUT, check=True).stdout
        return json.loads(out) if out.strip() else []

    def stats(self) -> dict:
        """nfdump -I: totals and 'Sequence failures' over every file."""
        out = subprocess.run(["nfdump", "-R", self.dir, "-I"], capture_output=True,
                             text=True, timeout=TIMEOUT, check=True).stdout
        return {k.strip(): v.strip() for k, _, v in
                (line.partition(":") for line in out.splitlines()) if v}


PMACCT_CONFIG = """\
daemonize: false
{daemon}_ip: 127.0.0.1
{daemon}_port: {port}
{daemon}_renormalize: {renormalize}
plugins: print
aggregate: src_host, dst_host, src_port, dst_port, proto, in_iface, out_iface, vlan, src_mac, dst_mac
print_output: json
print_output_file: {dir}/flows.json
print_output_file_append: true
print_refresh_time: 1
"""
SFACCTD_COUNTERS = """\
sfacctd_counter_file: {dir}/counters.json
sfacctd_counter_output: json
"""


class PmacctCollector:
    """pmacct's sfacctd (sFlow) or nfacctd (NetFlow/IPFIX) with the print
    plugin (appending JSON, 1 s refresh); sfacctd also logs sFlow counter
    samples. With renormalize, sfacctd multiplies packets and bytes by the
    (effective) sampling rate."""

    def __init__(self, workdir: str, daemon: str = "sfacctd", renormalize: bool = True,
                 ns: str | None = None):
        self.daemon = daemon
        self.ns = ns
        self.dir = os.path.join(workdir, daemon)
        os.makedirs(self.dir)
        self.port = free_udp_port()
        self.target = f"127.0.0.1:{self.port}"
        self.config = os.path.join(self.dir, f"{daemon}.conf")
        config = PMACCT_CONFIG + (SFACCTD_COUNTERS if daemon == "sfacctd" else "")
        with open(self.config, "w") as f:
            f.write(config.format(daemon=daemon, port=self.port, dir=self.dir,
                                  renormalize=str(renormalize).lower()))
        self.process = None

    def __enter__(self):
        self.process = ManagedProcess(_in_ns(self.ns, [self.daemon, "-f", self.config]),
                                      os.path.join(self.dir, f"{self.daemon}.log"))
        wait_until_listening(self.process, self.port, self.daemon, self.ns)
        wait_for(lambda: "Purging cache" in self.process.log() or not self.process.alive(),
                 f"{self.daemon} print plugin to start")
        return self

    def __exit__(self, *exc):
        # pmacct's core blocks SIGTERM while busy; SIGINT is its clean stop
        self.process.stop(signal.SIGINT)

    def _json_lines(self, name: str) -> list[dict]:
        try:
            with open(os.path.join(self.dir, name)) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def flows(self) -> list[dict]:
        return [r for r in self._json_lines("flows.json") if r.get("event_type") == "purge"]

    def counters(self) -> list[dict]:
        return [r for r in self._json_lines("counters.json") if r.get("event_type") == "log"]


EXPERT_WARNING = 0x00600000      # wireshark PI_WARN; PI_ERROR is 0x00800000


class LoopbackCapture:
    """dumpcap on lo for the given UDP ports; decode() runs tshark on the file
    with the decode-as rules given (e.g. {port: "cflow"})."""

    def __init__(self, workdir: str, ports: list[int], ns: str | None = None):
        self.ns = ns
        self.path = os.path.join(workdir, "capture.pcapng")
        self.filter = " or ".join(f"udp port {p}" for p in ports)
        self.process = None

    def __enter__(self):
        self.process = ManagedProcess(_in_ns(self.ns, ["dumpcap", "-i", "lo", "-f", self.filter,
                                                       "-w", self.path]),
                                      self.path + ".log")
        # "Capturing on" comes before dumpcap opens the interface; "File:"
        # after it has opened it, set the filter and written the file's
        # header: a datagram sent before that is not captured (seen once
        # in a loaded suite run: the capture waited 20 s for it).
        wait_for(lambda: "File: " in self.process.log() or not self.process.alive(),
                 "dumpcap to start capturing")
        if not self.process.alive():
            raise RuntimeError(f"dumpcap exited: {self.process.log()}")
        return self

    def captured(self) -> int:
        counts = re.findall(r"Packets: (\d+)", self.process.log())
        return int(counts[-1]) if counts else 0

    def stop(self, expect_packets: int) -> None:
        """Waits until dumpcap reports `expect_packets`, then stops it."""
        try:
            wait_for(lambda: self.captured() >= expect_packets,
                     f"dumpcap to capture {expect_packets} packets")
        finally:
            self.process.stop(signal.SIGINT)

    def __exit__(self, *exc):
        if self.process.alive():
            self.process.stop(signal.SIGINT)

    def _tshark(self, decode_as: dict, *args) -> str:
        argv = ["tshark", "-r", self.path]
        for port, proto in decode_as.items():
            argv += ["-d", f"udp.port=={port},{proto}"]
        return subprocess.run(argv + list(args), capture_output=True, text=True,
                              timeout=TIMEOUT * 3, check=True).stdout

    def decode(self, decode_as: dict) -> list[dict]:
        """Every frame as {field name: [values...]} over all protocol layers."""
        frames = []
        for packet in json.loads(self._tshark(decode_as, "-T", "json", "--no-duplicate-keys")):
            fields: dict[str, list] = {}
            _flatten(packet["_source"]["layers"], fields)
            frames.append(fields)
        return frames

    def problems(self, decode_as: dict) -> list[str]:
        """Frames that tshark found malformed or flagged warning or worse."""
        out = self._tshark(decode_as, "-T", "fields", "-e", "frame.number", "-e",
                           "_ws.malformed", "-e", "_ws.expert.severity", "-e",
                           "_ws.expert.message")
        bad = []
        for line in out.splitlines():
            cols = line.split("\t") + ["", "", ""]
            severities = [int(s) for s in cols[2].split(",") if s]
            if cols[1] or any(s >= EXPERT_WARNING for s in severities):
                bad.append(line)
        return bad


def _flatten(node, fields: dict) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                _flatten(value, fields)
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    fields.setdefault(key, []).extend(value)
            else:
                fields.setdefault(key, []).append(value)
    elif isinstance(node, list):
        for item in node:
            _flatten(item, fields)


@pytest.fixture
def nfcapd(tmp_path):
    with NfcapdCollector(str(tmp_path)) as collector:
        yield collector


@pytest.fixture
def sfacctd(tmp_path):
    with PmacctCollector(str(tmp_path), "sfacctd") as collector:
        yield collector


@pytest.fixture
def nfacctd(tmp_path):
    with PmacctCollector(str(tmp_path), "nfacctd") as collector:
        yield collector


# -- what the exporter tests feed in ------------------------------------------

def flow_key(i: int, version: int = 4, **fields):
    """A distinct TCP flow number i (IPv4 or IPv6), with MACs and ports."""
    from vswitch.export import FlowKey
    if version == 4:
        src, dst = f"10.{i // 250}.{i % 250 + 1}.1", f"10.200.{i % 250 + 1}.2"
    else:
        src, dst = f"2001:db8::{i + 1:x}", f"2001:db8:1::{i + 1:x}"
    base = dict(in_port=1, out_port=2, src_mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
                dst_mac="02:00:00:00:ff:01", ip_version=version, src_ip=src, dst_ip=dst,
                protocol=6, src_port=10000 + i, dst_port=80)
    base.update(fields)
    return FlowKey(**base)


def tcp_frame(i: int, payload: int = 100, vlan: int = 0) -> bytes:
    """An Ethernet/IPv4/TCP frame for flow i, optionally 802.1Q tagged."""
    from scapy.all import IP, TCP, Dot1Q, Ether, raw
    eth = Ether(src=f"02:00:00:00:00:{i + 1:02x}", dst="02:00:00:00:ff:01")
    if vlan:
        eth = eth / Dot1Q(vlan=vlan)
    return raw(eth / IP(src=f"10.0.{i}.1", dst=f"10.0.{i}.2")
               / TCP(sport=20000 + i, dport=443, flags="A") / (b"x" * payload))
