"""vswitchd --pmd-nice and --max-idle: parsed within their ranges, from the
command line or the environment; bad values stop the daemon with the
reason before anything starts."""
import pytest

from vswitch import daemon
from vswitch.switch import MEGAFLOW_IDLE_SECONDS


def test_pmd_nice_from_the_command_line_and_the_environment(monkeypatch):
    monkeypatch.delenv("VSWITCH_PMD_NICE", raising=False)
    assert daemon.parse_args([]).pmd_nice is None  # poll threads as any thread
    assert daemon.parse_args(["--pmd-nice", "-10"]).pmd_nice == -10
    assert daemon.parse_args(["--pmd-nice", str(daemon.PMD_NICE_MAX)]).pmd_nice == daemon.PMD_NICE_MAX
    monkeypatch.setenv("VSWITCH_PMD_NICE", "-5")
    assert daemon.parse_args([]).pmd_nice == -5


@pytest.mark.parametrize("option, value, says", [
    ("--pmd-nice", str(daemon.PMD_NICE_MIN - 1), "not within"),
    ("--pmd-nice", str(daemon.PMD_NICE_MAX + 1), "not within"),
    ("--pmd-nice", "high", "not a whole number"),
    ("--max-idle", "0", "not a positive number"),
    ("--max-idle", "10s", "not an integer"),
])
def test_bad_values_are_refused_with_the_reason(option, value, says, capsys, monkeypatch):
    monkeypatch.delenv("VSWITCH_PMD_NICE", raising=False)
    with pytest.raises(SystemExit) as exc:
        daemon.parse_args([option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and says in err


def test_max_idle_default_is_the_switchs(monkeypatch):
    monkeypatch.delenv("VSWITCH_MAX_IDLE", raising=False)
    assert daemon.parse_args([]).max_idle == MEGAFLOW_IDLE_SECONDS * daemon.MS_PER_S
    monkeypatch.setenv("VSWITCH_MAX_IDLE", "60000")
    assert daemon.parse_args([]).max_idle == 60000


def test_the_daemon_range_is_the_datapaths():
    from vswitch.datapath._datapath import lib
    assert daemon.PMD_NICE_MAX == lib.VS_PMD_NICE_MAX
