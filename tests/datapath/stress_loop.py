"""Runs the concurrency stress test (test_dp_concurrency.py) many times in a
row, each run with its own seed, and stops at the first failure.

    python tests/datapath/stress_loop.py [--runs 100] [--seconds 2] [--tsan]

--tsan builds the ThreadSanitizer variant (VS_SANITIZE=thread
csrc/build_datapath.py, into build/sanitize-thread/) and runs against it
with the TSan runtime preloaded; a data race report fails the run (TSan's
exit code).  Prints one line per run and a summary."""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST = os.path.join(ROOT, "tests", "datapath", "test_dp_concurrency.py")
TSAN_BUILD = os.path.join(ROOT, "build", "sanitize-thread")


def tsan_env(env):
    subprocess.run([sys.executable, os.path.join(ROOT, "csrc", "build_datapath.py")], check=True,
                   env={**env, "VS_SANITIZE": "thread"}, cwd=ROOT)
    runtime = subprocess.run(["gcc", "-print-file-name=libtsan.so"], check=True,
                             capture_output=True, text=True).stdout.strip()
    env = {**env, "PYTHONPATH": TSAN_BUILD, "LD_PRELOAD": runtime,
           "TSAN_OPTIONS": "report_signal_unsafe=0"}
    # The instrumented module, not the one in the tree: an uninstrumented
    # one under the TSan runtime reports races that are not there.
    where = subprocess.run([sys.executable, "-c", "import vswitch.datapath._datapath as m; "
                            "print(m.__file__)"], env=env, cwd=TSAN_BUILD, check=True,
                           capture_output=True, text=True).stdout.strip()
    assert where.startswith(TSAN_BUILD), where
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--tsan", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": ROOT}
    if args.tsan:
        env = tsan_env(env)
    t0 = time.monotonic()
    for i in range(args.runs):
        run_env = {**env, "VS_STRESS_SECONDS": str(args.seconds), "VS_STRESS_SEED": str(i)}
        # Not from ROOT: `python -m` puts the working directory first on
        # sys.path, which would import the tree's module over PYTHONPATH's.
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                            TEST], env=run_env, capture_output=True, text=True,
                           cwd=TSAN_BUILD if args.tsan else ROOT)
        ok = r.returncode == 0
        print(f"run {i + 1}/{args.runs} seed {i}: {'pass' if ok else 'FAIL rc=%d' % r.returncode}",
              flush=True)
        if not ok:
            print(r.stdout[-4000:], r.stderr[-8000:], sep="\n")
            print(f"failed after {i} passing runs")
            return 1
    print(f"{args.runs} runs passed in a row ({'tsan' if args.tsan else 'plain'}, "
          f"{args.seconds} s each, {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
