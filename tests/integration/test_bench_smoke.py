"""bench/run.py must keep working: run it in its tiniest mode against vswitch
only (afpacket ports, one repetition, one-second runs) and check that it
writes a well-formed report and JSON with traffic that actually arrived, and
that it leaves no namespaces behind.  Not a timed test: no number is compared
with a threshold other than "more than zero"."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "bench", "run.py")

pytestmark = pytest.mark.timeout(90)


def _bench_namespaces():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines()
            if line.startswith(("bva-", "bvb-", "bsw-"))}


def test_bench_quick_vswitch_produces_a_well_formed_result(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in ("iperf3", "gcc", "ethtool", "taskset"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    before = _bench_namespaces()
    md, raw = tmp_path / "RESULTS.md", tmp_path / "raw.json"
    proc = subprocess.run(
        [sys.executable, RUN, "--quick", "--only", "vswitch-afpacket", "--reps", "1",
         "--tcp-seconds", "1", "--udp-seconds", "1", "--ping-count", "50",
         "--no-megaflows", "--out", str(md), "--json", str(raw)],
        capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = json.loads(raw.read_text())
    assert data["errors"] == []
    (sample,) = data["samples"]["vswitch-afpacket"]
    for key in ("udp1", "udp10k"):
        udp = sample[key]
        assert udp["pps"] > 0, udp
        assert udp["sent_pps"] > 0, udp
        assert 0 <= udp["loss_pct"] <= 100, udp
        assert udp["cpu_ns_per_pkt"] is not None and udp["cpu_ns_per_pkt"] > 0, udp
        assert udp["busy_ns_per_pkt"] is not None and udp["busy_ns_per_pkt"] > 0, udp
    assert sample["tcp_off"]["gbps"] > 0, sample["tcp_off"]
    assert sample["tcp_on"]["gbps"] > 0, sample["tcp_on"]
    assert 0 < sample["ping"]["avg_us"] <= sample["ping"]["p99_us"], sample["ping"]

    text = md.read_text()
    assert "## Medians" in text and "## Targets from issue 3" in text
    table = [l for l in text.splitlines() if l.startswith("| UDP 64 B, 1 flow: delivered Mpps")]
    assert len(table) == 1 and float(table[0].split("|")[2]) > 0, table
    assert "**Load**" in text
    assert _bench_namespaces() <= before, "bench left namespaces behind"


def test_bench_exporter_variants_report_ratios_and_exporter_statistics(tmp_path):
    """The exporters' mode (vswitch-PORT-netflow / -sflow beside vswitch-PORT):
    the exporter is configured, its statistics column shows records sent,
    and the report has the ratio table with a verdict per row."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in ("iperf3", "gcc", "ethtool", "taskset"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    before = _bench_namespaces()
    md, raw = tmp_path / "EXPORT_RESULTS.md", tmp_path / "raw.json"
    configs = ["vswitch-afpacket", "vswitch-afpacket-netflow", "vswitch-afpacket-sflow"]
    proc = subprocess.run(
        [sys.executable, RUN, "--quick", "--only", ",".join(configs), "--reps", "1",
         "--tcp-seconds", "1", "--udp-seconds", "0.3", "--ping-count", "10",
         "--export-settle", "0", "--no-megaflows", "--out", str(md), "--json", str(raw)],
        capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    data = json.loads(raw.read_text())
    assert data["errors"] == []
    for cfg in configs:
        (sample,) = data["samples"][cfg]
        for key in ("udp1", "udp10k", "udp10k_warm"):
            assert sample[key]["pps"] > 0, (cfg, key, sample[key])
    for cfg, kind in ((configs[1], "netflow"), (configs[2], "sflow")):
        (sample,) = data["samples"][cfg]
        stats = sample["export"]["settled"]
        assert stats["sent_records"] > 0 and stats["sent_datagrams"] > 0, (kind, stats)
        assert stats["send_errors"] == 0, (kind, stats)
        # The counting collector received what the switch says it sent.
        assert stats["drain_datagrams"] == stats["sent_datagrams"], (kind, stats)
        assert stats["drain_records"] == stats["sent_records"], (kind, stats)
    (sflow,) = data["samples"][configs[2]]
    assert sflow["udp1"]["dp"]["samples"] > 0, sflow["udp1"]["dp"]

    text = md.read_text()
    assert "## Exporters" in text and "**Issue target**" in text
    rows = [l for l in text.splitlines()
            if l.startswith(("| vswitch-afpacket | netflow | ", "| vswitch-afpacket | sflow | "))]
    assert len(rows) == 2 * 5, rows  # two exporters × five metrics
    assert all(r.rstrip(" |").endswith(("PASS", "**FAIL**")) for r in rows), rows
    assert _bench_namespaces() <= before, "bench left namespaces behind"
