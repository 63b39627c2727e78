"""set-ssl / get-ssl / del-ssl: the command engine with certificates made at
test time (openssl CLI), the checks that keep unusable files out of the
configuration, and the same text as the real ovs-vsctl 3.1 (on a private
ovsdb-server) where both accept the command."""
import os
import shutil

import pytest
from helpers.pki import CA, have_openssl
from test_vsctl_ovs_parity import Pair, ovsdb  # noqa: F401 — the fixture

from vswitch.config.commands import CommandError, execute
from vswitch.config.render import render
from vswitch.config.schema import empty_config

pytestmark = pytest.mark.skipif(not have_openssl(), reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca1, ca2 = CA(d, "ca1"), CA(d, "ca2")
    return {"dir": str(d), "switch": ca1.issue("switch"), "other": ca2.issue("other"), "ca2": ca2}


def run(config, *argv):
    return execute(config, [list(argv)])


def test_set_get_del(pki):
    s = pki["switch"]
    config, _ = run(empty_config(), "set-ssl", s.key, s.cert, s.ca)
    (uuid, row), = config["SSL"].items()
    assert row == {"private_key": s.key, "certificate": s.cert, "ca_cert": s.ca, "bootstrap_ca_cert": False}
    _, (out,) = run(config, "get-ssl")
    assert render("get-ssl", out) == (f"Private key: {s.key}\nCertificate: {s.cert}\n"
                                      f"CA Certificate: {s.ca}\nBootstrap: false")
    # set-ssl again replaces the one row (a new uuid, as ovs-vsctl)
    o = pki["other"]
    config2, _ = run(config, "set-ssl", o.key, o.cert, o.ca)
    assert len(config2["SSL"]) == 1 and uuid not in config2["SSL"]
    # generic commands see it; "." is the row, as in ovs-vsctl
    _, (got,) = run(config2, "get", "SSL", ".", "private_key", "bootstrap_ca_cert")
    assert got == [o.key, False]
    _, (records,) = run(config2, "list", "SSL")
    assert records[0]["ca_cert"] == o.ca
    config3, _ = run(config2, "del-ssl")
    assert config3["SSL"] == {}
    assert run(config3, "get-ssl")[1] == [None] and render("get-ssl", None) == ""
    assert run(config3, "del-ssl")[0]["SSL"] == {}


def _refused(config, argv, *words):
    with pytest.raises(CommandError) as err:
        run(config, *argv)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    return str(err.value)


def test_unusable_files_are_refused_naming_the_file_and_nothing_is_stored(pki, tmp_path):
    s, o = pki["switch"], pki["other"]
    start, _ = run(empty_config(), "set-ssl", s.key, s.cert, s.ca)
    missing = str(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    unreadable = tmp_path / "unreadable.pem"
    shutil.copy(s.key, unreadable)
    os.chmod(unreadable, 0)
    cases = [
        ((missing, s.cert, s.ca), ("private key", missing, "no such file")),
        ((s.key, missing, s.ca), ("certificate", missing, "no such file")),
        ((s.key, s.cert, missing), ("CA certificate", missing, "no such file")),
        ((s.key, s.cert, str(garbage)), ("CA certificate", str(garbage), "not a PEM")),
        ((s.cert, s.cert, s.ca), ("private key", s.cert, "not a PEM")),
        ((s.key, s.key, s.ca), ("certificate", s.key, "not a PEM")),
        ((s.key, o.cert, s.ca), (s.key, o.cert, "cannot be used together")),
        (("switch-privkey.pem", s.cert, s.ca), ("switch-privkey.pem", "absolute path")),
        ((str(tmp_path), s.cert, s.ca), (str(tmp_path), "directory")),
    ]
    if os.geteuid() != 0:  # root reads any file
        cases.append(((str(unreadable), s.cert, s.ca), (str(unreadable), "cannot read")))
    for args, words in cases:
        message = _refused(start, ["set-ssl", *args], "set-ssl: ", *words)
        assert message.count("\n") == 0
    # the configuration given in is what stays (execute works on a copy)
    assert run(start, "get-ssl")[1][0]["private_key"] == s.key
    assert _refused(empty_config(), ["set-ssl", missing, s.cert, s.ca], missing)


def test_columns_are_written_by_set_ssl_only(pki):
    s = pki["switch"]
    config, _ = run(empty_config(), "set-ssl", s.key, s.cert, s.ca)
    _refused(config, ["set", "SSL", ".", "private_key=/nonexistent"], "read-only column private_key")
    _refused(config, ["set", "SSL", ".", "bootstrap_ca_cert=true"], "read-only column")
    _refused(config, ["clear", "SSL", ".", "ca_cert"], "read-only column")
    _refused(config, ["--bootstrap", "set-ssl", s.key, s.cert, s.ca], "no '--bootstrap' option")
    _refused(empty_config(), ["get", "SSL", ".", "private_key"], 'no row "." in table SSL')


# ---------------------------------------------------------------- against ovs-vsctl 3.1

@pytest.fixture
def pair(ovsdb):  # noqa: F811
    pair = Pair(ovsdb)
    assert pair.ovs("del-ssl")[0] == 0
    return pair


def test_same_text_as_ovs_vsctl(pair, pki):
    s, o = pki["switch"], pki["other"]
    for text in ("get-ssl", f"set-ssl {s.key} {s.cert} {s.ca}", "get-ssl",
                 f"set-ssl {o.key} {o.cert} {o.ca} -- get-ssl", "get SSL . private_key ca_cert bootstrap_ca_cert",
                 "--columns=private_key,certificate,ca_cert,bootstrap_ca_cert list SSL",
                 "del-ssl", "get-ssl", "del-ssl",
                 f"set-ssl {s.key} {s.cert}", f"set-ssl {s.key} {s.cert} {s.ca} {s.ca}", "get-ssl x",
                 "del-ssl x", "get SSL . private_key"):
        theirs, ours = pair.both(text)
        assert ours == theirs, text
