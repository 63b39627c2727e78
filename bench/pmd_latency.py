"""Adaptive polling (issue 16): ping latency through the C datapath and the
CPU an idle poll thread costs, for a base tree (e.g. main: the poll thread
sleeps in poll() whenever its ports are empty) against this tree (adaptive:
it spins for a window after traffic, then sleeps) and this tree with busy
polling, interleaved run by run.

Setup (root): namespaces A, B and SW; veths A–SW and B–SW; in SW a worker
process (PYTHONPATH = the tree under test) opens both SW ends as afpacket
ports of a Datapath with one poll thread pinned to SWITCH_CPU and two
megaflows (in_port 1 → 2, 2 → 1): the fast path alone, no slow path in the
loop.  ping runs in A, pinned to TRAFFIC_CPU, PING_COUNT echoes every
PING_INTERVAL s; then the worker measures its own CPU (utime + stime from
/proc/self/stat) over IDLE_SECONDS without traffic (idle_cpu_pct), as it
did while ping ran (ping_cpu_pct, with the dump thread's in *_dump).

The *_dump variants install DUMP_FLOWS megaflows that never match and dump
them every DUMP_PAUSE_S while ping runs: adaptive_dump (and base_dump) with
one C call for all of them (which holds the datapath's control mutex for
the whole copy, 0.15 s or more), adaptive_chunked_dump with the cursor, one
chunk of dpif.DUMP_CHUNK per call.  On the base tree the control mutex is
the one the poll thread needs for every batch; here poll threads never
take it, so what is left is CPU: the dumping thread competes with ping and
the poll thread for the 2 CPUs.

    sudo python bench/pmd_latency.py --base /tmp/base-tree [--reps 5]

Prints one line per run and the medians per variant as JSON (load average
included: the machine is shared)."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TREE, "tests"))

PING_COUNT = 500
PING_INTERVAL = "0.002"  # s, as bench/run.py's ping
IDLE_SECONDS = 5.0
TRAFFIC_CPU, SWITCH_CPU = 0, 1
ADDR_A, ADDR_B, PREFIX = "10.77.0.1", "10.77.0.2", "24"
PORT_A, PORT_B = 1, 2
SETTLE_S = 0.5  # after the worker is ready: the poll thread has its ports
EXACT = 0xFFFFFFFF
DUMP_FLOWS = 100000
NO_SUCH_PORT = 9
DUMP_PAUSE_S = 0.1  # between two dumps: a revalidator's pace, not a CPU hog
PORT_SPACE = 65536


def cpu_seconds():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime


def worker(args):
    """In SW: the datapath; 'ready', then (on a line from stdin) idle CPU."""
    from helpers import netns

    from vswitch.datapath.dpif import Datapath

    with netns.entered(args.ns):
        dp = Datapath()
        dp.add_port(PORT_A, "afpacket", args.port_a)
        dp.add_port(PORT_B, "afpacket", args.port_b)
    dp.set_pmds([SWITCH_CPU], busy_poll=args.busy)
    for src, dst in ((PORT_A, PORT_B), (PORT_B, PORT_A)):
        dp.flow_put({"in_port": src}, {"in_port": EXACT}, [("output", dst)])
    stop, dumper = threading.Event(), None
    if args.dump:
        dumper = start_dumps(dp, stop, chunked=args.dump == "chunked")
    print("ready", flush=True)
    c_ready, t_ready = cpu_seconds(), time.monotonic()
    sys.stdin.readline()  # the pings are done
    busy_pct = 100.0 * (cpu_seconds() - c_ready) / (time.monotonic() - t_ready)
    stop.set()
    if dumper:
        dumper.join()
    time.sleep(SETTLE_S)
    c0, t0 = cpu_seconds(), time.monotonic()
    time.sleep(IDLE_SECONDS)
    idle_pct = 100.0 * (cpu_seconds() - c0) / (time.monotonic() - t0)
    print(json.dumps({"idle_cpu_pct": idle_pct, "ping_cpu_pct": busy_pct,
                      "packets": dp.stats()["packets"]}), flush=True)
    dp.close()


def start_dumps(dp, stop, chunked=False):
    """DUMP_FLOWS megaflows on a port that does not exist, dumped every
    DUMP_PAUSE_S by a thread (cffi releases the GIL in the C call): all in
    one call, or (chunked) DUMP_CHUNK records per call with the cursor
    (vs_dp_flow_dump_next, as dpif.flow_dump_chunks reads them)."""
    from vswitch.datapath._datapath import ffi, lib
    from vswitch.datapath.dpif import DUMP_CHUNK

    mask = {"in_port": EXACT, "dl_type": 0xFFFF, "nw_src": EXACT, "tp_src": 0xFFFF}
    for i in range(DUMP_FLOWS):
        dp.flow_put({"in_port": NO_SUCH_PORT, "dl_type": 0x0800, "nw_src": i // PORT_SPACE,
                     "tp_src": i % PORT_SPACE}, mask, [("output", PORT_A)])
    out = ffi.new("struct vs_flow_dump[]", DUMP_CHUNK if chunked else DUMP_FLOWS + 16)
    total, cursor, done = ffi.new("uint64_t *"), ffi.new("uint64_t *"), ffi.new("int *")

    def loop():
        while not stop.is_set():
            if chunked:
                cursor[0], done[0] = 0, 0
                while not done[0]:
                    lib.vs_dp_flow_dump_next(dp._dp, cursor, out, DUMP_CHUNK, done)
            else:
                lib.vs_dp_flow_dump(dp._dp, out, DUMP_FLOWS + 16, total)
            stop.wait(DUMP_PAUSE_S)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def ping(ns):
    proc = subprocess.run(["ip", "netns", "exec", ns, "taskset", "-c", str(TRAFFIC_CPU), "ping",
                           "-c", str(PING_COUNT), "-i", PING_INTERVAL, "-W", "1", ADDR_B],
                          capture_output=True, text=True, timeout=PING_COUNT * 0.01 + 30)
    rtts = sorted(float(m) * 1000 for m in re.findall(r"time=([\d.]+) ms", proc.stdout))
    if not rtts:
        return {"error": "no replies"}
    p99 = rtts[min(len(rtts) - 1, int(round(0.99 * (len(rtts) - 1))))]
    return {"avg_us": statistics.fmean(rtts), "p99_us": p99,
            "loss_pct": 100.0 * (PING_COUNT - len(rtts)) / PING_COUNT}


def one_run(tree, busy, dump, sw, ns_a, port_a, port_b):
    env = {**os.environ, "PYTHONPATH": f"{tree}:{os.path.join(TREE, 'tests')}"}
    argv = [sys.executable, os.path.abspath(__file__), "--worker", "--ns", sw,
            "--port-a", port_a, "--port-b", port_b] + (["--busy"] if busy else []) + \
        (["--dump", dump] if dump else [])
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd="/")
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("worker did not start")
        time.sleep(SETTLE_S)
        result = ping(ns_a)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result.update(json.loads(proc.stdout.readline()))
        return result
    finally:
        proc.wait(timeout=IDLE_SECONDS + 30)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--ns")
    ap.add_argument("--port-a")
    ap.add_argument("--port-b")
    ap.add_argument("--busy", action="store_true")
    ap.add_argument("--dump", choices=("all", "chunked"))
    ap.add_argument("--no-busy", action="store_true", help="leave out the busy_poll variant")
    ap.add_argument("--with-dumps", action="store_true",
                    help="add the *_dump variants (DUMP_FLOWS megaflows dumped during ping)")
    ap.add_argument("--base", help="a tree with the datapath to compare against (built)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    from helpers import netns

    variants = [("adaptive", TREE, False, False)]
    if not args.no_busy:
        variants.append(("busy_poll", TREE, True, False))
    if args.base:
        variants.insert(0, ("base", args.base, False, False))
    if args.with_dumps:
        variants.append(("adaptive_dump", TREE, False, "all"))
        variants.append(("adaptive_chunked_dump", TREE, False, "chunked"))
        if args.base:
            variants.append(("base_dump", args.base, False, "all"))
    results = {name: [] for name, _, _, _ in variants}
    loads = []
    with netns.namespace("pl-sw") as sw, netns.namespace("pl-a") as ns_a, \
            netns.namespace("pl-b") as ns_b:
        a_host, a_sw = netns.veth_pair(ns_a, sw, prefix="pla")
        b_host, b_sw = netns.veth_pair(ns_b, sw, prefix="plb")
        netns.run(ns_a, "ip", "addr", "add", f"{ADDR_A}/{PREFIX}", "dev", a_host)
        netns.run(ns_b, "ip", "addr", "add", f"{ADDR_B}/{PREFIX}", "dev", b_host)
        for rep in range(args.reps):
            for name, tree, busy, dump in variants:
                loads.append(float(loadavg()))
                r = one_run(tree, busy, dump, sw, ns_a, a_sw, b_sw)
                results[name].append(r)
                print(f"rep {rep} {name}: {json.dumps(r)} load {loads[-1]}", flush=True)
    summary = {"load_min_max": [min(loads), max(loads)], "reps": args.reps,
               "ping": f"{PING_COUNT} x {PING_INTERVAL} s"}
    for name, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        keys = ("avg_us", "p99_us", "idle_cpu_pct", "ping_cpu_pct", "loss_pct")
        summary[name] = ({k: round(statistics.median(r[k] for r in ok), 2) for k in keys}
                         if ok else "failed")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
