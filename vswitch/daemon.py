"""vswitchd: the switch daemon.

One per run directory (a lock on RUNDIR/vswitchd.pid refuses a second copy).
It loads the configuration from SQLite, builds the datapath and bridges,
serves vsctl over RUNDIR/vswitchd.sock, handles upcalls from the fast path
on the asyncio loop, runs the revalidator once a second, wakes the bridges'
features (LACP, CFM, bonds) at the earliest time any of them asked for, and
follows netdevs' carrier through netlink link events (vswitch/linkmon.py).  SIGTERM or
SIGINT shuts down cleanly: the poll thread is joined, every port closed,
every tap it created deleted (closing a tap's descriptor deletes it).
"""
import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys

import vswitch
from vswitch import rpc
from vswitch.config import commands
from vswitch.config.store import ConfigStore
from vswitch.datapath.dpif import Datapath
from vswitch.linkmon import LinkMonitor
from vswitch.ofproto.connmgr import ConnManager
from vswitch.switch import Switch

log = logging.getLogger("vswitch.daemon")

DEFAULT_RUNDIR = "/run/vswitch"
DEFAULT_DB = "/var/lib/vswitch/conf.db"
REVALIDATE_SECONDS = 1.0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="vswitchd", description="vswitch switch daemon")
    p.add_argument("--rundir", default=os.environ.get("VSWITCH_RUNDIR", DEFAULT_RUNDIR),
                   help="holds vswitchd.sock, vswitchd.pid and the bridges' sockets")
    p.add_argument("--db", default=os.environ.get("VSWITCH_DB", DEFAULT_DB),
                   help="configuration database (SQLite)")
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("--pidfile", nargs="?", const="", default=None,
                   help="also write the pid to this file (default RUNDIR/vswitchd.pid)")
    p.add_argument("--log-file", help="log to this file instead of stderr")
    p.add_argument("--pmd-cpu-mask", default=os.environ.get("VSWITCH_PMD_CPU_MASK"),
                   help="hex CPU mask: one poll thread pinned to each CPU set "
                        "(like OVS other_config:pmd-cpu-mask); default one unpinned thread")
    p.add_argument("--pmd-busy-poll", choices=("yes", "no"), default="no",
                   help="pinned poll threads spin instead of sleeping when idle: lower "
                        "latency on a CPU the switch owns, worse on a shared one (default no)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--version", action="version", version=f"vswitchd (vswitch) {vswitch.__version__}")
    return p.parse_args(argv)


def cpus_of_mask(text):
    """'0x6' -> [1, 2]; refuses an empty mask."""
    try:
        mask = int(text, 16)
    except ValueError:
        raise SystemExit(f"vswitchd: --pmd-cpu-mask {text!r} is not a hex CPU mask") from None
    cpus = [cpu for cpu in range(mask.bit_length()) if mask >> cpu & 1]
    if not cpus:
        raise SystemExit("vswitchd: --pmd-cpu-mask selects no CPU")
    return cpus


class PidLock:
    """RUNDIR/vswitchd.pid, held with flock for the daemon's whole life."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise SystemExit(f"vswitchd: another vswitchd (pid {other or '?'}) is running "
                             f"on {os.path.dirname(path)}")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)


class Daemon:
    def __init__(self, args):
        self.args = args
        self.sock_path = os.path.join(args.rundir, "vswitchd.sock")
        self.store = ConfigStore(args.db)
        self.config = self.store.load()
        self.dp = Datapath()
        if args.pmd_cpu_mask:
            # Spinning (as OVS's PMDs always do) only pays on a CPU nothing
            # else runs on, so it is asked for explicitly.
            self.dp.set_pmds(cpus_of_mask(args.pmd_cpu_mask), busy_poll=args.pmd_busy_poll == "yes")
        self.switch = Switch(self.dp)
        self.switch.interfaces.remembered = self.store.load_ofports()
        self._saved_ofports = dict(self.switch.interfaces.remembered)
        self.switch.wake = self._schedule_features
        self.linkmon = None
        self._feature_timer = None  # asyncio TimerHandle of the next run_features
        self.connmgrs = {}  # bridge name -> ConnManager (OpenFlow listeners and controllers)
        self.stop = None

    def _save_ofports(self):
        """Keeps the OpenFlow numbers the switch assigned, as OVS writes them
        into the Interface table, so a restart hands out the same ones."""
        assigned = self.switch.interfaces.assigned_ofports()
        if assigned != self._saved_ofports:
            self.store.save_ofports(assigned)
            self._saved_ofports = assigned
            self.switch.interfaces.remembered = dict(assigned)

    def _apply(self, config):
        """Configuration -> switch, then the bridges' OpenFlow connections."""
        self.switch.apply_config(config)
        self._save_ofports()
        for name in set(self.connmgrs) - set(self.switch.of):
            self.connmgrs.pop(name).close()
        for name, ofs in self.switch.of.items():
            mgr = self.connmgrs.get(name)
            if mgr is None or mgr.switch is not ofs:
                mgr = self.connmgrs[name] = ConnManager(
                    ofs, self.args.rundir, on_change=lambda n=name: self.switch.flush_bridge(n))
            mgr.reconcile(ofs.controllers)

    def dispatch(self, method, params):
        if method == "transact":
            try:
                new_config, outputs = commands.execute(self.config, params.get("commands"), self.switch)
            except commands.CommandError as exc:
                raise rpc.RpcError(str(exc)) from None
            if new_config != self.config:
                self.store.commit(new_config)  # durable before it takes effect
                self.config = new_config
                self._apply(new_config)
            return {"outputs": outputs}
        if method == "ping":
            return {"pid": os.getpid(), "version": vswitch.__version__}
        raise rpc.RpcError(f"unknown method {method}")

    async def _revalidator(self):
        while True:
            await asyncio.sleep(REVALIDATE_SECONDS)
            try:
                self.switch.revalidate()
            except Exception:  # keep the daemon alive; the next round retries
                log.exception("revalidator failed")

    def _schedule_features(self):
        """(Re)arms the one timer that runs the features when the earliest
        of them is due; called whenever a feature's next_wakeup may have moved."""
        if self.stop is None:
            return  # not running yet: run() schedules
        loop = asyncio.get_running_loop()
        due = self.switch.next_wakeup()
        if self._feature_timer is not None:
            if due is not None and abs(self._feature_timer.when() - (loop.time() + due - self.switch.clock())) < 1e-4:
                return
            self._feature_timer.cancel()
            self._feature_timer = None
        if due is not None:
            delay = max(0.0, due - self.switch.clock())
            self._feature_timer = loop.call_later(delay, self._run_features)

    def _run_features(self):
        self._feature_timer = None
        try:
            self.switch.run_features()
        except Exception:
            log.exception("bridge features failed")
        self._schedule_features()

    def _on_link_events(self):
        # After an overrun the monitor's resync already starts with a "gone"
        # event for every link that vanished meanwhile.
        for ev in self.linkmon.drain():
            try:
                self.switch.link_event(ev)
            except Exception:
                log.exception("handling the link event of %s failed", ev.name)

    def _start_link_monitor(self, loop):
        """Carrier of every netdev now, then its changes as netlink reports them."""
        try:
            self.linkmon = LinkMonitor()
        except OSError as exc:
            log.error("no netlink link monitor (%s): carrier changes will not be seen", exc)
            return
        for name, ev in self.linkmon.snapshot().items():
            self.switch.interfaces.links[name] = ev
            self.switch.carriers[name] = ev.carrier
        self.switch.interfaces.following_links = True
        loop.add_reader(self.linkmon.fileno(), self._on_link_events)

    def _on_upcalls(self):
        try:
            self.switch.handle_upcalls()
        except Exception:
            log.exception("upcall handling failed")

    async def run(self, ready=None):
        loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        self._start_link_monitor(loop)
        self._apply(self.config)
        loop.add_reader(self.dp.upcall_fd, self._on_upcalls)
        self._schedule_features()
        server = await rpc.start_server(self.sock_path, self.dispatch)
        revalidator = asyncio.create_task(self._revalidator())
        log.info("vswitchd %s ready on %s", vswitch.__version__, self.sock_path)
        if ready:
            ready()
        try:
            await self.stop.wait()
        finally:
            log.info("shutting down")
            revalidator.cancel()
            if self._feature_timer is not None:
                self._feature_timer.cancel()
            if self.linkmon is not None:
                loop.remove_reader(self.linkmon.fileno())
                self.linkmon.close()
            for mgr in self.connmgrs.values():
                mgr.close()
            server.close()
            await server.wait_closed()
            loop.remove_reader(self.dp.upcall_fd)
            self.switch.close()
            self.dp.close()
            self.store.close()
            try:
                os.unlink(self.sock_path)
            except FileNotFoundError:
                pass


def _setup_logging(args):
    level = logging.DEBUG if args.verbose else logging.INFO
    handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


def _detach():
    """Forks; the parent exits once the child says it is ready (or failed).
    Returns the function the child calls when ready."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(wfd)
        msg = os.read(rfd, 4096).decode(errors="replace")
        if msg == "ok":
            os._exit(0)
        sys.stderr.write(msg or "vswitchd: failed to start\n")
        os._exit(1)
    os.close(rfd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)

    def ready():
        os.write(wfd, b"ok")
        os.close(wfd)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)

    def failed(message):
        os.write(wfd, message.encode())

    return ready, failed


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ready = failed = None
    if args.detach:
        ready, failed = _detach()
    _setup_logging(args)
    try:
        os.makedirs(args.rundir, exist_ok=True)
        lock = PidLock(os.path.join(args.rundir, "vswitchd.pid"))
    except SystemExit as exc:
        if failed:
            failed(f"{exc}\n")
        raise
    extra_pidfile = args.pidfile or None
    if extra_pidfile:
        with open(extra_pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")
    try:
        daemon = Daemon(args)
        asyncio.run(daemon.run(ready))
    except Exception as exc:
        if failed:
            failed(f"vswitchd: {exc}\n")
        raise
    finally:
        lock.release()
        if extra_pidfile:
            try:
                os.unlink(extra_pidfile)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
