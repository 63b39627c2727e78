"""vswitchd --pmd-maxsleep (OVS's other_config:pmd-maxsleep): parsed as µs
within OVS's range, from the command line or VSWITCH_PMD_MAXSLEEP; bad
values stop the daemon with a clear message before anything starts."""
import pytest

from vswitch import daemon


def test_pmd_maxsleep_from_the_command_line_and_the_environment(monkeypatch):
    monkeypatch.delenv("VSWITCH_PMD_MAXSLEEP", raising=False)
    assert daemon.parse_args([]).pmd_maxsleep is None  # the datapath's default
    assert daemon.parse_args(["--pmd-maxsleep", "50"]).pmd_maxsleep == 50
    assert daemon.parse_args(["--pmd-maxsleep", "0"]).pmd_maxsleep == 0
    limit = str(daemon.PMD_MAXSLEEP_LIMIT_US)
    assert daemon.parse_args(["--pmd-maxsleep", limit]).pmd_maxsleep == daemon.PMD_MAXSLEEP_LIMIT_US
    monkeypatch.setenv("VSWITCH_PMD_MAXSLEEP", "7")
    assert daemon.parse_args([]).pmd_maxsleep == 7
    assert daemon.parse_args(["--pmd-maxsleep", "9"]).pmd_maxsleep == 9


RANGE = f"not within 0..{daemon.PMD_MAXSLEEP_LIMIT_US}"


@pytest.mark.parametrize("value, says", [
    ("-1", RANGE),
    (str(daemon.PMD_MAXSLEEP_LIMIT_US + 1), RANGE),
    ("25us", "not a whole number"),
])
def test_bad_pmd_maxsleep_is_refused_with_the_reason(value, says, capsys, monkeypatch):
    monkeypatch.delenv("VSWITCH_PMD_MAXSLEEP", raising=False)
    with pytest.raises(SystemExit) as exc:
        daemon.parse_args(["--pmd-maxsleep", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--pmd-maxsleep" in err and says in err


def test_the_daemon_limit_is_the_datapaths():
    from vswitch.datapath._datapath import lib
    assert daemon.PMD_MAXSLEEP_LIMIT_US * 1000 == lib.VS_PMD_MAXSLEEP_LIMIT_NS
