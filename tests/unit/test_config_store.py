"""ConfigStore: SQLite persistence, round trips and all-or-nothing commits."""
import sqlite3

import pytest

from vswitch.config.commands import execute
from vswitch.config.schema import empty_config
from vswitch.config.store import ConfigStore


def sample_config():
    config, _ = execute(empty_config(), [["add-br", "br0"], ["add-port", "br0", "p1", "tag=10"],
                                         ["set", "Interface", "p1", "type=afxdp", "options:xdp-mode=native"]])
    return config


@pytest.fixture
def store(tmp_path):
    store = ConfigStore(str(tmp_path / "state" / "sub" / "conf.db"))
    try:
        yield store
    finally:
        store.close()


def test_new_file_loads_empty_config_in_wal_mode(store):
    assert store.load() == {"Bridge": {}, "Port": {}, "Interface": {}, "Mirror": {}, "NetFlow": {}, "sFlow": {}, "IPFIX": {}, "SSL": {},
                            "Flow_Table": {}}
    with sqlite3.connect(store.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_round_trip_survives_reopen(store):
    config = sample_config()
    store.commit(config)
    assert store.load() == config
    store.close()
    again = ConfigStore(store.path)
    try:
        assert again.load() == config
    finally:
        again.close()


def test_commit_replaces_everything(store):
    store.commit(sample_config())
    smaller, _ = execute(empty_config(), [["add-br", "brX"]])
    store.commit(smaller)
    assert store.load() == smaller


def test_failed_commit_keeps_previous_content(store):
    good = sample_config()
    store.commit(good)
    bad = sample_config()
    # Bridge and Port rows serialise fine and are written first; the Interface
    # row then fails, part-way through the transaction.
    next(iter(bad["Interface"].values()))["options"] = {"x": object()}
    with pytest.raises(TypeError):
        store.commit(bad)
    assert store.load() == good
    with sqlite3.connect(store.path) as other:       # an independent reader agrees
        assert other.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 5
    store.commit(empty_config())                     # and the store is still usable
    assert store.load() == empty_config()
