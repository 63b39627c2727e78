"""vswitch.vlog: vlog-set/vlog-list specs, the rate-limiting filter (injected
clock), SIGHUP's reopen, and the commands' path through the command engine."""
import logging
import os

import pytest

from vswitch import vlog
from vswitch.config import commands, schema
from vswitch.config.render import render


@pytest.fixture
def modules():
    """Known vswitch.* loggers at INFO; every vswitch.* level restored afterwards."""
    for name in ("vswitch.switch", "vswitch.daemon", "vswitch.bridge.lacp"):
        logging.getLogger(name)
    loggers = [logging.getLogger("vswitch"), *vlog.modules().values()]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.INFO)
    yield
    for lg, level in zip(loggers, saved):
        lg.setLevel(level)


def levels():
    return {e["module"]: e["level"] for e in vlog.list_levels()}


def test_modules_are_vswitch_loggers_without_prefix(modules):
    found = vlog.modules()
    assert {"switch", "daemon", "bridge.lacp", "vlog"} <= set(found)
    assert found["bridge.lacp"] is logging.getLogger("vswitch.bridge.lacp")
    assert not any(name.startswith("vswitch") for name in found)


def test_set_one_module_and_all(modules):
    vlog.set_levels(["switch:warn"])
    assert levels()["switch"] == "WARN"
    assert levels()["daemon"] == "INFO"
    assert logging.getLogger("vswitch.switch").getEffectiveLevel() == logging.WARNING
    vlog.set_levels(["dbg:bridge.lacp"])  # words in any order, as OVS
    assert levels()["bridge.lacp"] == "DBG"
    vlog.set_levels(["err"])              # a level alone: every module
    assert set(levels().values()) == {"ERR"}
    vlog.set_levels(["ANY:off"])
    assert set(levels().values()) == {"OFF"}
    assert not logging.getLogger("vswitch.daemon").isEnabledFor(logging.CRITICAL)
    vlog.set_levels([])                   # no spec: everything to dbg
    assert set(levels().values()) == {"DBG"}
    vlog.set_levels(["daemon"])           # a module alone: dbg
    assert levels()["daemon"] == "DBG"


def test_level_names_and_synonyms(modules):
    for word, name in [("emer", "EMER"), ("WARN", "WARN"), ("warning", "WARN"), ("error", "ERR"),
                       ("debug", "DBG"), ("info", "INFO")]:
        vlog.set_levels([f"switch:{word}"])
        assert levels()["switch"] == name


@pytest.mark.parametrize("specs, message", [
    (["nosuch:dbg"], 'no level or module "nosuch"'),
    (["switch:loud"], 'no level or module "loud"'),
    (["switch:daemon:dbg"], "cannot specify multiple modules"),
    (["switch:info:warn"], "cannot specify multiple levels"),
    (["switch:warn", "bogus"], 'no level or module "bogus"'),
])
def test_bad_spec_names_the_word_and_changes_nothing(modules, specs, message):
    before = levels()
    with pytest.raises(vlog.VlogError) as err:
        vlog.set_levels(specs)
    assert str(err.value) == message
    assert levels() == before


def test_new_module_inherits_an_any_level(modules):
    vlog.set_levels(["warn"])
    late = logging.getLogger("vswitch.test_vlog_created_later")
    try:
        assert late.getEffectiveLevel() == logging.WARNING
    finally:
        logging.Logger.manager.loggerDict.pop("vswitch.test_vlog_created_later", None)


def test_render_list_is_ovs_layout():
    text = vlog.render_list([{"module": "bridge.lacp", "level": "INFO"}, {"module": "switch", "level": "DBG"}])
    assert text.splitlines() == [" " * 17 + "level", " " * 17 + "-----",
                                 "bridge.lacp       INFO", "switch             DBG"]


class FakeSwitch:
    def fdb_show(self, bridge):
        return [f"fdb of {bridge}"]


def test_commands_reach_vlog_through_the_runtime(modules):
    runtime = vlog.Runtime(FakeSwitch())
    config = schema.empty_config()
    new, outputs = commands.execute(config, [["vlog-set", "switch:err"], ["vlog-list"]], runtime)
    assert new == config  # log levels are not configuration
    listed = {e["module"]: e["level"] for e in outputs[1]}
    assert listed["switch"] == "ERR"
    assert "switch             ERR" in render("vlog-list", outputs[1]).splitlines()
    # The Switch's own methods still answer through the wrapper.
    assert runtime.fdb_show("br0") == ["fdb of br0"]
    with pytest.raises(commands.CommandError) as err:
        commands.execute(config, [["vlog-set", "nosuch:dbg"]], runtime)
    assert str(err.value) == 'vlog-set: no level or module "nosuch"'
    assert levels()["switch"] == "ERR"


def test_vlog_list_takes_no_argument():
    with pytest.raises(commands.CommandError):
        commands.parse_command(["vlog-list", "x"])
    assert "vlog-set" in commands.usage() and "vlog-list" in commands.usage()


# ---------------------------------------------------------------- rate limiting

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def limited():
    """A private logger whose records pass one RateLimit into a list."""
    clock = Clock()
    limit = vlog.RateLimit(burst=3, interval=10.0, traceback_interval=60.0, clock=clock)
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.levelno, self.format(record)))

    handler = Keep()
    handler.addFilter(limit)
    logger = logging.getLogger("vswitch.test_vlog_rl")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, limit, clock, records
    logger.removeHandler(handler)
    logging.Logger.manager.loggerDict.pop("vswitch.test_vlog_rl", None)


def test_same_template_passes_burst_times_then_is_counted(limited):
    logger, limit, clock, records = limited
    for n in range(10):
        logger.warning("port %s vanished", f"p{n}")
    assert [text for _, text in records] == ["port p0 vanished", "port p1 vanished", "port p2 vanished"]
    logger.warning("another warning")          # another template: its own budget
    logger.info("port %s vanished", "info")   # below WARNING: never limited
    assert len(records) == 5
    clock.now += 10.0
    logger.warning("port %s vanished", "p10")
    assert records[-1][1] == "port p10 vanished (7 similar messages suppressed in the last 10 s)"


def test_flush_reports_a_storm_that_stopped(limited):
    logger, limit, clock, records = limited
    for _ in range(5):
        logger.error("upcall ring full")
    limit.flush()
    assert len(records) == 3  # the window is not over yet
    clock.now += 11.0
    limit.flush()
    assert records[-1] == (logging.ERROR, "2 similar messages suppressed in the last 10 s: upcall ring full")
    clock.now += 11.0
    limit.flush()
    assert len(records) == 4  # reported once


def fail(n):
    raise RuntimeError(f"boom {n}")


def test_same_traceback_at_most_once_per_interval(limited):
    logger, limit, clock, records = limited
    for n in range(3):
        try:
            fail(n)
        except RuntimeError:
            logger.exception("revalidator failed")
        clock.now += 1.0
    tracebacks = [text for _, text in records if "Traceback" in text]
    assert len(tracebacks) == 1 and "boom 0" in tracebacks[0]
    assert records[1][1] == "revalidator failed: RuntimeError (traceback logged less than 60 s ago)"
    clock.now += 60.0
    try:
        fail(9)
    except RuntimeError:
        logger.exception("revalidator failed")
    assert "Traceback" in records[-1][1] and "boom 9" in records[-1][1]


def test_one_filter_on_two_handlers_decides_once(limited):
    logger, limit, clock, records = limited
    second = []

    class Keep(logging.Handler):
        def emit(self, record):
            second.append(self.format(record))

    handler = Keep()
    handler.addFilter(limit)
    logger.addHandler(handler)
    try:
        for _ in range(5):
            logger.warning("twice")
    finally:
        logger.removeHandler(handler)
    assert len(records) == 3 and len(second) == 3


# ---------------------------------------------------------------- destinations

def test_reopen_follows_the_file_name(tmp_path):
    path = tmp_path / "vswitchd.log"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, list(vlog._handlers))
    try:
        assert vlog.configure(log_file=str(path)) is None
        logging.getLogger("vswitch.daemon").info("before")
        os.rename(path, tmp_path / "vswitchd.log.1")
        vlog.reopen()
        logging.getLogger("vswitch.daemon").info("after")
    finally:
        for h in vlog._handlers:
            root.removeHandler(h)
            h.close()
        root.handlers[:], vlog._handlers[:] = saved[0], saved[2]
        root.setLevel(saved[1])
    assert "before" in (tmp_path / "vswitchd.log.1").read_text()
    new = path.read_text()
    assert "after" in new and "before" not in new and "reopened log file" in new


def test_log_file_in_missing_directory_is_one_line(tmp_path):
    with pytest.raises(vlog.StartupError) as err:
        vlog.file_handler(str(tmp_path / "nodir" / "log"))
    assert str(err.value) == f"vswitchd: cannot open log file {tmp_path}/nodir/log: No such file or directory"


def test_missing_syslog_socket_is_a_warning(tmp_path):
    assert vlog.syslog_handler(str(tmp_path / "nolog")) is None


def test_directories_the_daemon_creates_are_0700_under_umask_000(tmp_path):
    import stat

    from vswitch.config.store import ConfigStore
    from vswitch.daemon import make_dir
    old = os.umask(0)
    try:
        make_dir(str(tmp_path / "run" / "vswitch"), "run directory")
        store = ConfigStore(str(tmp_path / "lib" / "conf.db"))
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "run" / "vswitch").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "lib").st_mode) == 0o700
