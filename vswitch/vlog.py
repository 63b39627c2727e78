"""vswitchd's logging, shaped like Open vSwitch's vlog.

Destinations (`configure`): a log file (`--log-file`, reopened on SIGHUP for
log rotation), syslog (detached without `--log-file`: /dev/log or
`--syslog-target`, ident "vswitchd[PID]", facility daemon), or stderr.

Modules are the daemon's `vswitch.*` loggers named without the prefix
(`switch`, `daemon`, `interfaces`, `bridge.lacp`, ...). `set_levels` and
`list_levels` are what `vsctl vlog-set` / `vlog-list` run, as `ovs-appctl
vlog/set` / `vlog/list`: a spec is words joined by ':' in any order, at most
one module (or ANY) and one level (off, emer, err, warn, info, dbg); a spec
without a level means dbg, no spec at all sets every module to dbg. Unlike
OVS there is one level per module, not one per destination. Every spec is
checked before any is applied, so a bad word changes nothing.

`RateLimit` is the filter on every handler (OVS's VLOG_RATE_LIMIT): each
(logger, level, message template) of WARNING or above passes at most `burst`
times per `interval` seconds; the first one through after a quiet spell says
how many similar messages were dropped, and `flush()` (the daemon calls it
periodically) reports drops of a storm that stopped. A record carrying a
traceback prints it at most once per `traceback_interval` for the same
exception type and frames; repeats within that time keep their message line
only.
"""
import logging
import logging.handlers
import os
import socket
import sys
import time
import traceback

PREFIX = "vswitch."
log = logging.getLogger("vswitch.vlog")
OFF = 100  # above CRITICAL: nothing passes
LEVELS = {"off": OFF, "emer": logging.CRITICAL, "err": logging.ERROR, "warn": logging.WARNING,
          "info": logging.INFO, "dbg": logging.DEBUG}
_SYNONYMS = {"emerg": "emer", "critical": "emer", "error": "err", "warning": "warn", "debug": "dbg"}
DEFAULT_SYSLOG = "/dev/log"
FORMAT = "%(asctime)s|%(levelname)s|%(name)s: %(message)s"
SYSLOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class VlogError(Exception):
    """A bad vlog-set spec; the message names the bad word."""


def level_name(level):
    """Python level -> OVS name (the nearest at or above it)."""
    for name, value in sorted(LEVELS.items(), key=lambda item: item[1]):
        if level <= value:
            return name.upper()
    return "OFF"


def modules():
    """{module name: logger} for every vswitch.* logger that exists."""
    found = {}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith(PREFIX) and isinstance(logger, logging.Logger):
            found[name[len(PREFIX):]] = logger
    return dict(sorted(found.items()))


def _parse_spec(spec, known):
    module = level = None
    for word in spec.split(":"):
        lower = word.lower()
        lower = _SYNONYMS.get(lower, lower)
        if lower in LEVELS:
            if level is not None:
                raise VlogError("cannot specify multiple levels")
            level = LEVELS[lower]
        elif word == "ANY" or word in known:
            if module is not None:
                raise VlogError("cannot specify multiple modules")
            module = word
        else:
            raise VlogError(f'no level or module "{word}"')
    return module or "ANY", logging.DEBUG if level is None else level


def set_levels(specs):
    """vlog-set: [MODULE:]LEVEL... (all checked first, then applied)."""
    known = modules()
    parsed = [_parse_spec(spec, known) for spec in (specs or ["ANY:dbg"])]
    for module, level in parsed:
        if module == "ANY":
            # The parent too, so a module created later starts at this level.
            logging.getLogger(PREFIX.rstrip(".")).setLevel(level)
            for logger in known.values():
                logger.setLevel(level)
        else:
            known[module].setLevel(level)


def list_levels():
    """vlog-list: [{"module", "level"}] with each module's effective level."""
    return [{"module": name, "level": level_name(logger.getEffectiveLevel())}
            for name, logger in modules().items()]


def render_list(entries):
    """vlog-list as text, in ovs-appctl vlog/list's layout (one level column)."""
    lines = [f"{'':<17}level", f"{'':<17}-----"]
    lines += [f"{e['module']:<17}{e['level']:>5}" for e in entries]
    return "\n".join(lines)


class Runtime:
    """What the daemon passes to the command engine as its runtime: the
    Switch's methods, plus vlog_set / vlog_list (vlog is daemon state, not
    the switch's)."""

    def __init__(self, switch):
        self._switch = switch

    def __getattr__(self, name):
        return getattr(self._switch, name)

    @staticmethod
    def vlog_set(specs):
        try:
            set_levels(specs)
        except VlogError as exc:
            raise ValueError(str(exc)) from None

    @staticmethod
    def vlog_list():
        return list_levels()


# ---------------------------------------------------------------- rate limiting

class RateLimit(logging.Filter):
    def __init__(self, burst=5, interval=60.0, traceback_interval=60.0, min_level=logging.WARNING,
                 clock=time.monotonic):
        super().__init__()
        self.burst, self.interval = burst, interval
        self.traceback_interval, self.min_level, self.clock = traceback_interval, min_level, clock
        self._windows = {}     # (name, level, template) -> [start, passed, suppressed]
        self._tracebacks = {}  # (name, template, exception signature) -> time last printed
        self._last = self._last_result = None

    def filter(self, record):
        # One filter serves every handler: decide each record once.
        if record is self._last:
            return self._last_result
        result = self._decide(record)
        self._last, self._last_result = record, result
        return result

    def _decide(self, record):
        if record.levelno < self.min_level:
            return True
        now = self.clock()
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        if record.exc_info and record.exc_info[0] is not None:
            self._limit_traceback(record, template, now)
        key = (record.name, record.levelno, template)
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval:
            suppressed = window[2] if window else 0
            window = self._windows[key] = [now, 0, 0]
            if suppressed and isinstance(record.msg, str):
                record.msg += f" ({suppressed} similar messages suppressed in the last " \
                              f"{self.interval:g} s)"
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        return False

    def _limit_traceback(self, record, template, now):
        etype, _, tb = record.exc_info
        frames = tuple((f.filename, f.lineno) for f in traceback.extract_tb(tb))
        key = (record.name, template, etype.__name__, frames)
        last = self._tracebacks.get(key)
        if last is not None and now - last < self.traceback_interval:
            record.exc_info = record.exc_text = None
            if isinstance(record.msg, str):
                record.msg += f": {etype.__name__} (traceback logged less than " \
                              f"{self.traceback_interval:g} s ago)"
        else:
            self._tracebacks[key] = now

    def flush(self):
        """Reports the drops of every window that ended with some: one line
        '<N> similar messages suppressed ...' on the same logger and level."""
        now = self.clock()
        for key, window in list(self._windows.items()):
            if now - window[0] >= self.interval:
                del self._windows[key]
                name, level, template = key
                if window[2]:
                    logging.getLogger(name).log(
                        level, "%d similar messages suppressed in the last %g s: %s",
                        window[2], self.interval, template)


RATE_LIMIT = RateLimit()


# ---------------------------------------------------------------- destinations

_handlers = []


class StartupError(Exception):
    """One line for the user, no traceback."""


def _reason(exc):
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def file_handler(path):
    try:
        return logging.FileHandler(path)
    except OSError as exc:
        raise StartupError(f"vswitchd: cannot open log file {path}: {_reason(exc)}") from None


def syslog_handler(target):
    """A SysLogHandler on unix socket `target` (or UDP HOST:PORT), or None
    when a unix socket path does not exist."""
    if not target.startswith("/") and ":" in target:
        host, _, port = target.rpartition(":")
        handler = logging.handlers.SysLogHandler((host, int(port)), logging.handlers.SysLogHandler.LOG_DAEMON)
    else:
        if not os.path.exists(target):
            return None
        handler = logging.handlers.SysLogHandler(target, logging.handlers.SysLogHandler.LOG_DAEMON,
                                                 socket.SOCK_DGRAM)
    handler.setFormatter(logging.Formatter(SYSLOG_FORMAT))
    set_syslog_ident(handler)
    return handler


def set_syslog_ident(handler=None):
    """ident "vswitchd[PID]: " (again after a fork)."""
    for h in [handler] if handler else _handlers:
        if isinstance(h, logging.handlers.SysLogHandler):
            h.ident = f"vswitchd[{os.getpid()}]: "


def configure(log_file=None, syslog_target=None, use_syslog=False, verbose=0):
    """Installs the daemon's one handler; returns a warning line or None.
    Raises StartupError (one line) when the log file cannot be opened."""
    warning = None
    if log_file:
        handler = file_handler(log_file)
    elif use_syslog or syslog_target:
        target = syslog_target or DEFAULT_SYSLOG
        handler = syslog_handler(target)
        if handler is None:
            warning = (f"vswitchd: no syslog socket at {target}: logging to stderr until detached, "
                       f"then nowhere (use --log-file)")
    else:
        handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
    if not isinstance(handler, logging.handlers.SysLogHandler):
        handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RATE_LIMIT)
    root = logging.getLogger()
    for old in _handlers:
        root.removeHandler(old)
    _handlers[:] = [handler]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return warning


def logs_to_stderr():
    """Whether log lines reach stderr (no handler yet: logging's last resort does)."""
    return not _handlers or any(type(h) is logging.StreamHandler for h in _handlers)


def reopen():
    """SIGHUP: every log file is reopened by name (after `mv log log.1` the
    new lines go to a new `log`). A file that cannot be reopened keeps the
    old one, and says so."""
    for handler in _handlers:
        if not isinstance(handler, logging.FileHandler):
            continue
        try:
            stream = handler._open()
        except OSError as exc:
            log.error("cannot reopen log file %s: %s",
                                                    handler.baseFilename, _reason(exc))
            continue
        handler.acquire()
        try:
            old, handler.stream = handler.stream, stream
        finally:
            handler.release()
        if old is not None:
            old.close()
        log.info("reopened log file %s", handler.baseFilename)
