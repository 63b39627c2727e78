"""vswitchd: the switch daemon.

One per run directory (a lock on RUNDIR/vswitchd.pid refuses a second copy;
`--replace` takes over from the running one once its own start-up is done,
so a restart loses only the moment between the old daemon closing its ports
and the new one opening them).
It loads the configuration from SQLite, builds the datapath and bridges,
serves vsctl over RUNDIR/vswitchd.sock, handles upcalls from the fast path
on the asyncio loop, runs the revalidator once a second, wakes the bridges'
features (LACP, CFM, bonds) at the earliest time any of them asked for, and
follows netdevs' carrier through netlink link events (vswitch/linkmon.py).  SIGTERM or
SIGINT shuts down cleanly: the poll thread is joined, every port closed,
every tap it created deleted (closing a tap's descriptor deletes it).

Operations (as Open vSwitch's daemons): logging and its levels live in
vswitch/vlog.py (log file reopened on SIGHUP, syslog when detached without
--log-file, rate-limited warnings and tracebacks, `vsctl vlog-set/vlog-list`
through `vlog.Runtime`, which the command engine gets instead of the bare
Switch); `--monitor` restarts a crashed daemon; readiness is reported to
systemd (sd_notify READY=1) and to a --detach parent; a start-up error is
one line on stderr and a non-zero exit.
"""
import argparse
import asyncio
import fcntl
import logging
import os
import signal
import socket
import sqlite3
import sys
import time
from importlib import resources

import vswitch
from vswitch import rpc, rpc_server, vlog
from vswitch import appctl  # ovs-appctl: OVS's unixctl on RUNDIR/vswitchd.ctl
from vswitch import ovsdb  # OVSDB (RFC 7047): RUNDIR/db.sock and --remote
from vswitch.config import commands
from vswitch.config.store import ConfigStore
from vswitch.datapath.dpif import Datapath
from vswitch.linkmon import LinkMonitor
from vswitch.round_cpu import RoundCpu
from vswitch.ofproto.connmgr import ConnManager
from vswitch.switch import DEFAULT_FLOW_LIMIT, MEGAFLOW_IDLE_SECONDS, Switch
from vswitch.vlog import StartupError

log = logging.getLogger("vswitch.daemon")

DEFAULT_RUNDIR = "/run/vswitch"
DEFAULT_DB = "/var/lib/vswitch/conf.db"
REVALIDATE_SECONDS = 1.0
# Between two steps of a revalidator round the event loop sleeps this long
# (asyncio's epoll waits at least 1 ms), so the main thread gives up the CPU
# instead of only letting other callbacks run: see Daemon._revalidator.
REVALIDATE_CPU_BREAK_S = 0.0005
LOCK_WAIT = 1.0  # seconds a new daemon waits for an exiting one's pid lock
REPLACE_WAIT = 10.0  # seconds --replace waits for the daemon it stopped to let go
MS_PER_S = 1000  # --max-idle is in ms, as OVS's other_config:max-idle
# --monitor restarts a daemon killed by one of these (OVS's list, plus
# SIGKILL: the OOM killer's), at most once per RESTART_BACKOFF seconds.
RESTART_SIGNALS = frozenset({signal.SIGABRT, signal.SIGALRM, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                             signal.SIGPIPE, signal.SIGSEGV, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGKILL})
RESTART_BACKOFF = 10.0
UNIT_PATH = os.path.join(os.path.dirname(vswitch.__file__), "data", "vswitchd.service")

DESCRIPTION = """\
vswitchd: the vswitch switch daemon.

Builds the datapath and bridges from the configuration database, serves
vsctl on RUNDIR/vswitchd.sock and OpenFlow on each bridge's socket, and runs
until SIGTERM or SIGINT. Only one vswitchd runs on a run directory."""

EPILOG = """\
logging:
  In the foreground vswitchd logs to stderr; with --log-file to that file;
  detached without --log-file to syslog (/dev/log, ident "vswitchd", facility
  daemon; if there is no /dev/log it says so on stderr and logs nowhere once
  detached). Levels change at run time with `vsctl vlog-set [MODULE:]LEVEL`
  (LEVEL: off emer err warn info dbg; MODULE as `vsctl vlog-list` prints
  them, or ANY). A warning or error repeated from the same place is logged at
  most 5 times a minute, then counted ("N similar messages suppressed"); the
  same traceback at most once a minute.

files:
  RUNDIR/vswitchd.pid   pid of the running daemon (with --monitor: the
                        monitored daemon, not the monitor, as OVS); locked
  RUNDIR/vswitchd.sock  vsctl's JSON-RPC socket (mode 0600)
  RUNDIR/vswitchd.ctl   ovs-appctl's socket (OVS unixctl protocol, mode 0600)
  RUNDIR/db.sock        the Open_vSwitch database over OVSDB (RFC 7047), for
                        ovs-vsctl --db=unix:RUNDIR/db.sock, ovsdb-client and
                        OVS's IDLs (mode 0600); more with --remote
  RUNDIR/BRIDGE.mgmt    each bridge's OpenFlow socket (ovs-ofctl)
  DB                    configuration (SQLite; default %(db)s)
  %(unit)s
                        systemd unit (Type=notify); --print-systemd-unit

signals:
  SIGTERM, SIGINT       shut down cleanly (to a monitor: stops both)
  SIGHUP                reopen the log file (log rotation)

environment:
  VSWITCH_RUNDIR        default for --rundir (%(rundir)s)
  VSWITCH_DB            default for --db
  VSWITCH_PMD_CPU_MASK  default for --pmd-cpu-mask
  VSWITCH_PMD_MAXSLEEP  default for --pmd-maxsleep
  NOTIFY_SOCKET         systemd's notification socket: READY=1 is sent
                        there once vswitchd serves vsctl

exit status:
  0 after a clean shutdown; 1 when it cannot start (one line on stderr
  says why, naming the file or directory)."""


def _metrics_listen(text):
    # prometheus-client is imported only when metrics are asked for: a
    # restart pays for every module imported before the ports reopen.
    from vswitch import metrics
    return metrics.listen_argument(text)


# OVS's limit for other_config:pmd-maxsleep, µs (the datapath refuses more).
PMD_MAXSLEEP_LIMIT_US = 10000
PMD_NICE_MIN, PMD_NICE_MAX = -20, 19  # setpriority's range (datapath.h VS_PMD_NICE_*)


def _pmd_maxsleep(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of µs") from None
    if not 0 <= value <= PMD_MAXSLEEP_LIMIT_US:
        raise argparse.ArgumentTypeError(f"{value} is not within 0..{PMD_MAXSLEEP_LIMIT_US} µs")
    return value


def _pmd_nice(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not PMD_NICE_MIN <= value <= PMD_NICE_MAX:
        raise argparse.ArgumentTypeError(f"{value} is not within {PMD_NICE_MIN}..{PMD_NICE_MAX}")
    return value


def _ovsdb_remote(text):
    try:
        return ovsdb.parse_remote(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="vswitchd", description=DESCRIPTION,
        epilog=EPILOG % {"db": DEFAULT_DB, "rundir": DEFAULT_RUNDIR, "unit": UNIT_PATH},
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rundir", default=os.environ.get("VSWITCH_RUNDIR", DEFAULT_RUNDIR),
                   help="holds vswitchd.sock, vswitchd.pid and the bridges' sockets")
    p.add_argument("--db", default=os.environ.get("VSWITCH_DB", DEFAULT_DB),
                   help="configuration database (SQLite)")
    p.add_argument("--detach", action="store_true", help="run in the background")
    p.add_argument("--pidfile", nargs="?", const="", default=None,
                   help="also write the pid to this file (default RUNDIR/vswitchd.pid)")
    p.add_argument("--replace", action="store_true",
                   help="take over from the vswitchd running on RUNDIR: start up first, then "
                        "stop it (SIGTERM) and reopen its ports at once: the restart that loses "
                        "the least traffic")
    p.add_argument("--monitor", action="store_true",
                   help="a monitor process restarts the daemon when it crashes "
                        "(killed by SEGV, ABRT, KILL, ...), at most once per 10 s")
    p.add_argument("--log-file", help="log to this file (reopened on SIGHUP) instead of stderr/syslog")
    p.add_argument("--syslog-target", metavar="PATH|HOST:PORT",
                   help="syslog to this unix datagram socket or UDP address instead of /dev/log "
                        "(used when detached without --log-file, or whenever given)")
    p.add_argument("--print-systemd-unit", action="store_true",
                   help="print the systemd unit shipped with vswitchd and exit")
    p.add_argument("--pmd-cpu-mask", default=os.environ.get("VSWITCH_PMD_CPU_MASK"),
                   help="hex CPU mask: one poll thread pinned to each CPU set "
                        "(like OVS other_config:pmd-cpu-mask); default one unpinned thread")
    p.add_argument("--flow-limit", type=_positive_int, metavar="N",
                   default=int(os.environ.get("VSWITCH_FLOW_LIMIT", DEFAULT_FLOW_LIMIT)),
                   help="megaflows at most (OVS's other_config:flow-limit); at the limit new "
                        "flows are forwarded by the slow path uncached (default %(default)s)")
    p.add_argument("--max-idle", type=_positive_int, metavar="MS",
                   default=int(os.environ.get("VSWITCH_MAX_IDLE", MEGAFLOW_IDLE_SECONDS * MS_PER_S)),
                   help="a megaflow unused this many ms is deleted (OVS's other_config:max-idle; "
                        "above three quarters of the flow limit they go after 1 s) (default %(default)s)")
    p.add_argument("--pmd-nice", metavar="N", type=_pmd_nice, default=os.environ.get("VSWITCH_PMD_NICE"),
                   help="the poll threads' nice value (-20..19; below 0 needs CAP_SYS_NICE): "
                        "below 0 they win more of a CPU shared with the slow path, so a dump or "
                        "a flow-mod storm delays forwarding less; not realtime (default: as "
                        "any thread)")
    p.add_argument("--pmd-busy-poll", choices=("yes", "no"), default="no",
                   help="pinned poll threads always spin, even when idle (default: adaptive, "
                        "they spin while traffic keeps coming and sleep when it stops): "
                        "a whole core each, worse on a shared CPU (default no)")
    p.add_argument("--pmd-maxsleep", metavar="USEC", type=_pmd_maxsleep,
                   default=os.environ.get("VSWITCH_PMD_MAXSLEEP"),
                   help="load-based sleeping (OVS's other_config:pmd-maxsleep): a spinning "
                        "poll thread whose batches are less than half full under a dense "
                        "one-way stream sleeps up to this many µs between rounds, 0 = never "
                        "(default: the datapath's, 50)")
    p.add_argument("--metrics", metavar="[HOST:]PORT", type=_metrics_listen, default=None,
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (off by default; "
                        "HOST defaults to 127.0.0.1, any other address must be written out)")
    p.add_argument("--remote", action="append", default=[], type=_ovsdb_remote, metavar="REMOTE",
                   help="also serve OVSDB on REMOTE: punix:PATH (e.g. punix:/run/openvswitch/db.sock, "
                        "OVS's default) or ptcp:[PORT][:IP] (127.0.0.1 unless an address is given; "
                        "no access control); RUNDIR/db.sock is always served; repeatable")
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


LOCK_POLL = 0.002  # seconds between tries for the pid lock: the gap of a restart


def _stop_daemon(pid):
    """SIGTERMs the vswitchd holding our pid lock (--replace); returns pid.
    The lock is held, so the pid is alive and is the daemon's (its command
    line is checked all the same)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return pid
    if b"vswitch" in cmdline:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return pid


class PidLock:
    """RUNDIR/vswitchd.pid, held with flock for the daemon's whole life.

    A daemon still exiting holds it for a moment (about 0.1 s after SIGTERM):
    a new one waits up to LOCK_WAIT seconds for it instead of being refused,
    so `kill OLD; vswitchd ...` works.  The exiting daemon unlinks the file
    before closing it, so a lock won on that old inode is retried on the
    file now at the path."""

    def __init__(self, path, replace=False):
        self.path = path
        deadline = time.monotonic() + LOCK_WAIT
        stopped = None  # the daemon --replace asked to exit
        while True:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
                if replace and stopped is None and other.isdigit():
                    # By now this process has done its slow part (Python's
                    # start-up and imports): the old daemon goes only now.
                    stopped = _stop_daemon(int(other))
                    deadline = time.monotonic() + REPLACE_WAIT
                if time.monotonic() < deadline:
                    os.close(self.fd)
                    time.sleep(LOCK_POLL)
                    continue
                os.close(self.fd)
                raise SystemExit(f"vswitchd: another vswitchd (pid {other or '?'}) is running "
                                 f"on {os.path.dirname(path)}")
            try:
                if os.stat(path).st_ino == os.fstat(self.fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(self.fd)  # won the lock of a file the old daemon just unlinked
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self):
        """Idempotent: the daemon lets go as soon as its ports are closed."""
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)  # ours, not a successor's
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


def _reason(exc):
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def open_store(path):
    """The configuration store and its contents, or one StartupError line."""
    try:
        store = ConfigStore(path)
        return store, store.load()
    except (OSError, sqlite3.Error) as exc:
        raise StartupError(f"vswitchd: cannot open database {path}: {_reason(exc)}") from None


def make_dir(path, what):
    """A directory the daemon creates is root's alone (0700, whatever the
    umask); an existing one is left as its owner made it."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        raise StartupError(f"vswitchd: cannot create {what} {path}: not a directory") from None
    except OSError as exc:
        raise StartupError(f"vswitchd: cannot create {what} {path}: {_reason(exc)}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"vswitchd: cannot write in {what} {path}")


class Daemon:
    def __init__(self, args):
        self.args = args
        self.sock_path = os.path.join(args.rundir, "vswitchd.sock")
        self.store, self.config = open_store(args.db)
        self.ovsdb = None  # OVSDB server (vswitch/ovsdb), from run()
        self._with_ovsdb_root()
        self.dp = Datapath()
        if args.pmd_cpu_mask:
            # Spinning (as OVS's PMDs always do) only pays on a CPU nothing
            # else runs on, so it is asked for explicitly.
            self.dp.set_pmds(cpus_of_mask(args.pmd_cpu_mask), busy_poll=args.pmd_busy_poll == "yes")
        if args.pmd_maxsleep is not None:
            self.dp.set_pmd_maxsleep(args.pmd_maxsleep)
        if args.pmd_nice is not None:
            try:
                self.dp.set_pmd_nice(args.pmd_nice)
            except PermissionError as exc:
                raise StartupError(f"vswitchd: --pmd-nice {args.pmd_nice}: {exc.strerror}") from None
        self.switch = Switch(self.dp, flow_limit=args.flow_limit, max_idle=args.max_idle / MS_PER_S)
        self.switch.interfaces.remembered = self.store.load_ofports()
        self._saved_ofports = dict(self.switch.interfaces.remembered)
        self.switch.wake = self._schedule_features
        self.pid_lock = None  # set by main: released as soon as the ports are closed
        self.runtime = vlog.Runtime(self.switch)  # the Switch, plus vlog_set / vlog_list
        self.linkmon = None
        self._feature_timer = None  # asyncio TimerHandle of the next run_features
        self.connmgrs = {}  # bridge name -> ConnManager (OpenFlow listeners and controllers)
        self.stop = None
        self.round_cpu = RoundCpu()  # the revalidator's CPU per round: upcall/show

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
        ssl_row = next(iter(config.get("SSL", {}).values()), None)  # set-ssl's single row
        for name, ofs in self.switch.of.items():
            mgr = self.connmgrs.get(name)
            if mgr is None or mgr.switch is not ofs:
                mgr = self.connmgrs[name] = ConnManager(
                    ofs, self.args.rundir, on_change=lambda n=name: self.switch.flush_bridge(n))
            mgr.reconcile(ofs.controllers, ssl_row)

    def change_config(self, new_config):
        """The one way configuration changes (vsctl's commands and OVSDB
        transactions): durable first, then applied, then OVSDB monitors told."""
        if new_config == self.config:
            return
        self.store.commit(new_config)  # durable before it takes effect
        self.config = new_config
        try:
            self._apply(new_config)
        finally:  # stored is stored: OVSDB shows it even if applying failed
            if self.ovsdb is not None:
                self.ovsdb.db.config_changed(new_config)

    def _with_ovsdb_root(self):
        """The store keeps OVSDB's Open_vSwitch row (its uuid, next_cfg,
        external_ids) beside the tables: created once, on first start."""
        config = ovsdb.with_root(self.config)
        if config is not self.config:
            try:
                self.store.commit(config)
            except (OSError, sqlite3.Error) as exc:
                raise StartupError(f"vswitchd: cannot write database {self.args.db}: {_reason(exc)}") from None
            self.config = config

    def dispatch(self, method, params):
        if method == "transact":
            try:
                new_config, outputs = commands.execute(self.config, params.get("commands"), self.runtime)
            except commands.CommandError as exc:
                raise rpc.RpcError(str(exc)) from None
            self.change_config(new_config)
            return {"outputs": outputs}
        if method == "ping":
            return {"pid": os.getpid(), "version": vswitch.__version__}
        raise rpc.RpcError(f"unknown method {method}")

    async def _revalidator(self):
        """One round per REVALIDATE_SECONDS, one dump chunk per turn of the
        loop.  Between two steps the thread sleeps (REVALIDATE_CPU_BREAK_S)
        rather than only yielding to other callbacks: the daemon's threads
        may share their CPU with a busy-polling poll thread (bench/run.py
        pins the whole switch to one CPU, as OVS's), and a packet that
        arrives while Python runs waits until Python blocks.  A cold round
        (3 megaflows, after a second of the poll thread spinning) took
        1.4-2.7 ms of that CPU in one go: bench/ping_outliers.py caught it as
        the one 1-2.5 ms ping echo per second.  Cut at each step, no stretch
        exceeds one step's work (each still 0.6-1.7 ms cold: longest Python
        runs per round 1.6-2.3 ms -> 1.0-1.9 ms in the trace).  Interleaved,
        2500 echoes per run, 4 runs, load 1.0-1.75: echoes over 300 µs per
        1000 28 / 2.4 / 2.0 / 2.4 before, 1.6 / 2.4 / 1.6 / 0.8 after; the
        machine's own noise (the Linux bridge, no switch process, has 8 per
        1000 over 100 µs) is of the same order.  Each step's CPU is recorded
        (round_cpu.py) for ovs-appctl upcall/show."""
        cpu = self.round_cpu
        while True:
            await asyncio.sleep(REVALIDATE_SECONDS)
            cpu.start()
            try:
                for _ in self.switch.revalidate_steps():
                    cpu.step()
                    await asyncio.sleep(REVALIDATE_CPU_BREAK_S)
                    cpu.resume()
            except Exception:  # keep the daemon alive; the next round retries
                log.exception("revalidator failed")
            if self.ovsdb is not None and self.ovsdb.db.watches_runtime():  # OVSDB monitors of runtime columns
                # (without any, the break would only add a wake-up: 60-140 µs
                # of CPU, cold, as bench/ping_outliers.py showed for a round
                # that did nothing but sleep between its steps)
                cpu.step()
                await asyncio.sleep(REVALIDATE_CPU_BREAK_S)
                cpu.resume()
                try:
                    self.ovsdb.db.refresh()
                except Exception:
                    log.exception("OVSDB refresh failed")
            cpu.step()
            cpu.finish()

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
        if self.ovsdb is not None:  # OVSDB monitors of link_state, ofport, error: at once
            try:
                self.ovsdb.db.refresh()
            except Exception:
                log.exception("OVSDB refresh failed")

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
        loop.add_signal_handler(signal.SIGHUP, vlog.reopen)
        suppressed = _every(loop, vlog.RATE_LIMIT.interval, vlog.RATE_LIMIT.flush)
        self._start_link_monitor(loop)
        self._apply(self.config)
        loop.add_reader(self.dp.upcall_fd, self._on_upcalls)
        self._schedule_features()
        metrics_server = None
        if self.args.metrics:  # before the control socket: a busy port stops the start
            from vswitch import metrics
            metrics_server = await metrics.start_metrics_server(self.switch, *self.args.metrics)
        # ---- OVSDB (vswitch/ovsdb): RUNDIR/db.sock and every --remote (before the
        # control socket, as metrics: a remote that cannot be served stops the start)
        try:
            self.ovsdb = await ovsdb.start(self, [("unix", os.path.join(self.args.rundir, "db.sock")),
                                                  *self.args.remote])
        except OSError as exc:
            raise StartupError(f"vswitchd: cannot serve OVSDB: {_reason(exc)}") from None
        # ---- end OVSDB
        server = await rpc_server.start_server(self.sock_path, self.dispatch)
        # ---- ovs-appctl (vswitch/appctl): `exit` sets self.stop, as SIGTERM does
        appctl_server = await appctl.start(self, appctl.ctl_path(self.args.rundir))
        # ---- end ovs-appctl
        revalidator = asyncio.create_task(self._revalidator())
        log.info("vswitchd %s ready on %s", vswitch.__version__, self.sock_path)
        if ready:
            ready()
        try:
            await self.stop.wait()
        finally:
            log.info("shutting down")
            sd_notify("STOPPING=1")
            suppressed.cancel()
            revalidator.cancel()
            if self._feature_timer is not None:
                self._feature_timer.cancel()
            if self.linkmon is not None:
                loop.remove_reader(self.linkmon.fileno())
                self.linkmon.close()
            for mgr in self.connmgrs.values():
                mgr.close()
            if metrics_server is not None:
                from vswitch import metrics
                await metrics.stop_metrics_server(metrics_server)
            server.close()
            await server.wait_closed()
            try:  # before the lock goes: after it, the path may be a successor's
                os.unlink(self.sock_path)
            except FileNotFoundError:
                pass
            await appctl.stop(appctl_server)  # ovs-appctl: closed and unlinked before the lock goes too
            if self.ovsdb is not None:  # OVSDB: sockets closed and unlinked before the lock goes
                await self.ovsdb.close()
                self.ovsdb = None
            loop.remove_reader(self.dp.upcall_fd)
            self.switch.close()
            if self.pid_lock is not None:
                # Ports are closed: a successor may take over now, while the
                # poll threads are joined and the rest is torn down.
                self.pid_lock.release()
            self.dp.close()
            self.store.close()


async def _periodic(interval, function):
    while True:
        await asyncio.sleep(interval)
        function()


def _every(loop, interval, function):
    return loop.create_task(_periodic(interval, function))


def sd_notify(state):
    """systemd's sd_notify: one datagram to $NOTIFY_SOCKET (a path, or
    '@name' for an abstract socket). Returns whether it was sent."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", path, _reason(exc))
        return False
    return True


def systemd_unit():
    """The shipped unit, its ExecStart pointing at this installation's vswitchd."""
    text = resources.files("vswitch").joinpath("data", "vswitchd.service").read_text()
    script = os.path.join(os.path.dirname(sys.executable), "vswitchd")
    if os.path.exists(script):
        text = text.replace("ExecStart=/usr/local/bin/vswitchd", f"ExecStart={os.path.abspath(script)}")
    return text


def _devnull_stdio():
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _startup_pipe(detached):
    """(read end, ready, failed): `ready()` writes "ok" (and, when detached,
    stops using the terminal), `failed(line)` writes the reason."""
    rfd, wfd = os.pipe()

    def ready():
        os.write(wfd, b"ok")
        os.close(wfd)
        if detached:
            _devnull_stdio()

    def failed(message):
        os.write(wfd, message.encode())

    return rfd, wfd, ready, failed


def _wait_startup(rfd):
    """What the child said: "ok", its failure line, or "" if it died first."""
    chunks = []
    while True:
        data = os.read(rfd, 4096)
        if not data:
            break
        chunks.append(data)
        if b"".join(chunks) == b"ok":
            break
    os.close(rfd)
    return b"".join(chunks).decode(errors="replace")


def _detach():
    """Forks; the parent exits once the child says it is ready (or failed).
    Returns the functions the child calls when ready or failed."""
    rfd, wfd, ready, failed = _startup_pipe(detached=True)
    pid = os.fork()
    if pid:
        os.close(wfd)
        msg = _wait_startup(rfd)
        if msg == "ok":
            os._exit(0)
        sys.stderr.write(msg or "vswitchd: failed to start\n")
        os._exit(1)
    os.close(rfd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    return ready, failed


def _describe(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed ({signal.Signals(sig).name}){', core dumped' if os.WCOREDUMP(status) else ''}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _monitor(detached, outer_ready, outer_failed):
    """--monitor, as OVS's: this process stays as the monitor and forks the
    daemon; it restarts the daemon when a RESTART_SIGNALS signal killed it
    (at most once per RESTART_BACKOFF s) and exits when it exited otherwise.
    SIGTERM/SIGINT to the monitor go to the daemon and stop both; SIGHUP
    reopens both's logs. Returns (ready, failed) in the daemon process only;
    the daemon writes the pidfile, so it holds the daemon's pid (as OVS)."""
    mlog = logging.getLogger("vswitch.monitor")
    vlog.set_syslog_ident()  # the monitor's own pid
    state = {"child": None, "stopping": False}

    def forward(signum, frame):
        if signum == signal.SIGHUP:
            vlog.reopen()
        else:
            state["stopping"] = True
        if state["child"]:
            try:
                os.kill(state["child"], signum)
            except ProcessLookupError:
                pass

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for sig in handled:
        signal.signal(sig, forward)
    first, last_restart = True, None
    while True:
        rfd, wfd, ready, failed = _startup_pipe(detached)
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            for sig in handled:
                signal.signal(sig, signal.SIG_DFL)
            return ready, failed
        os.close(wfd)
        state["child"] = pid
        if state["stopping"]:  # a signal between fork and child
            os.kill(pid, signal.SIGTERM)
        msg = _wait_startup(rfd)
        if msg != "ok":
            _, status = os.waitpid(pid, 0)
            line = msg or f"vswitchd: daemon pid {pid} failed to start ({_describe(status)})\n"
            if first and outer_failed:
                outer_failed(line)
            elif first:
                sys.stderr.write(line)
            else:
                mlog.error("%s", line.strip())
            os._exit(1)
        if first:
            mlog.info("monitoring pid %d", pid)
            if outer_ready:
                outer_ready()
            first = False
        _, status = os.waitpid(pid, 0)
        state["child"] = None
        crashed = os.WIFSIGNALED(status) and os.WTERMSIG(status) in RESTART_SIGNALS
        if state["stopping"] or not crashed:
            mlog.info("pid %d died, %s, exiting", pid, _describe(status))
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 0)
        if last_restart is not None and time.monotonic() - last_restart < RESTART_BACKOFF:
            mlog.warning("pid %d died, %s, waiting until %g seconds since last restart",
                         pid, _describe(status), RESTART_BACKOFF)
            while not state["stopping"] and time.monotonic() - last_restart < RESTART_BACKOFF:
                time.sleep(0.1)
            if state["stopping"]:
                os._exit(0)
        last_restart = time.monotonic()
        mlog.error("pid %d died, %s, restarting", pid, _describe(status))


def _fail(message, failed, logged=False):
    """A start-up error: one line to the user (through the --detach parent
    or straight to stderr), also to the log when that is not stderr."""
    line = message.rstrip("\n")
    if not logged and not vlog.logs_to_stderr():
        log.error("%s", line.removeprefix("vswitchd: "))
    if failed:
        failed(line + "\n")
    else:
        sys.stderr.write(line + "\n")
    return 1


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.print_systemd_unit:
        sys.stdout.write(systemd_unit())
        return 0
    # What can be checked before forking is, so its error reaches the terminal.
    try:
        warning = vlog.configure(log_file=args.log_file, syslog_target=args.syslog_target,
                                 use_syslog=args.detach, verbose=args.verbose)
        make_dir(args.rundir, "run directory")
        make_dir(os.path.dirname(os.path.abspath(args.db)), "database directory")
    except StartupError as exc:
        return _fail(str(exc), None)
    if warning:
        sys.stderr.write(warning + "\n")
    ready = failed = None
    if args.detach:
        ready, failed = _detach()
    if args.monitor:
        ready, failed = _monitor(args.detach, ready, failed)
    vlog.set_syslog_ident()
    # Until the event loop takes SIGHUP over, it must not kill the daemon.
    signal.signal(signal.SIGHUP, lambda signum, frame: vlog.reopen())
    rc = _run(args, ready, failed)
    # Everything the daemon owns is closed by now (ports, sockets, the
    # store, the pid lock): skip the interpreter's teardown of every module
    # and object (tens of ms), which only delays the exit a restart waits for.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def _run(args, ready, failed):
    try:
        lock = PidLock(os.path.join(args.rundir, "vswitchd.pid"), replace=args.replace)
    except SystemExit as exc:
        return _fail(str(exc), failed)
    except OSError as exc:
        return _fail(f"vswitchd: cannot create pidfile in {args.rundir}: {_reason(exc)}", failed)
    extra_pidfile = None
    started = False

    def on_ready():
        nonlocal started
        started = True
        if ready:
            ready()
        sd_notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=ready on {os.path.join(args.rundir, 'vswitchd.sock')}")

    try:
        if args.pidfile:
            try:
                with open(args.pidfile, "w") as f:
                    f.write(f"{os.getpid()}\n")
            except OSError as exc:
                raise StartupError(f"vswitchd: cannot write pidfile {args.pidfile}: {_reason(exc)}") from None
            extra_pidfile = args.pidfile
        daemon = Daemon(args)
        daemon.pid_lock = lock
        asyncio.run(daemon.run(on_ready))
    except StartupError as exc:
        return _fail(str(exc), failed)
    except Exception as exc:
        if started:
            raise
        # Not one of the expected errors: the traceback goes to the log
        # (unless that is the terminal), the user gets one line.
        if not vlog.logs_to_stderr():
            log.exception("start-up failed")
        return _fail(f"vswitchd: start-up failed: {exc}", failed, logged=True)
    finally:
        lock.release()
        if extra_pidfile:
            _unlink_own_pidfile(extra_pidfile)
    return 0


def _unlink_own_pidfile(path):
    """Removes --pidfile unless a successor (--replace) wrote its pid there."""
    try:
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return
        os.unlink(path)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    sys.exit(main())
