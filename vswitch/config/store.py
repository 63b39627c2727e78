"""Durable configuration: one SQLite file, one transaction per commit.

Rows are stored as (table, uuid, json) in a single SQL table; a commit
replaces the whole configuration inside one `BEGIN IMMEDIATE ... COMMIT`, so a
reader (or the daemon after a crash) sees either the old or the new config,
never a mix. WAL mode with synchronous=FULL: a commit that returned is on disk.
"""
import contextlib
import json
import os
import sqlite3

from vswitch.config import schema

SCHEMA_VERSION = "1"


class ConfigStore:
    def __init__(self, path):
        self.path = path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, mode=0o700, exist_ok=True)  # root's alone if we create it
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        with self._transaction():
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS rows (tbl TEXT NOT NULL, uuid TEXT NOT NULL, "
                            "data TEXT NOT NULL, PRIMARY KEY (tbl, uuid))")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            # The OpenFlow port numbers the daemon assigned (what OVS writes
            # into Interface ofport), so they survive a restart.
            self.db.execute("CREATE TABLE IF NOT EXISTS ofports (bridge TEXT NOT NULL, iface TEXT NOT NULL, "
                            "ofport INTEGER NOT NULL, PRIMARY KEY (bridge, iface))")

    @contextlib.contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE; COMMIT on success, ROLLBACK on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def load(self):
        """The stored config; every schema table is present (empty on a new file)."""
        config = schema.empty_config()
        for table, uuid, data in self.db.execute("SELECT tbl, uuid, data FROM rows ORDER BY tbl, uuid"):
            config.setdefault(table, {})[uuid] = json.loads(data)
        return config

    def commit(self, config):
        """Replace the stored config with `config`, all or nothing."""
        with self._transaction():
            self.db.execute("DELETE FROM rows")
            for table, rows in config.items():
                for uuid, row in rows.items():
                    # Serialised row by row inside the transaction: a bad value
                    # part-way through rolls back everything written so far.
                    self.db.execute("INSERT INTO rows VALUES (?, ?, ?)",
                                    (table, uuid, json.dumps(row, sort_keys=True)))

    def load_ofports(self):
        """{(bridge, interface): OpenFlow port} as last saved."""
        return {(b, i): n for b, i, n in self.db.execute("SELECT bridge, iface, ofport FROM ofports")}

    def save_ofports(self, assigned):
        """Replaces the saved OpenFlow port numbers with `assigned`."""
        with self._transaction():
            self.db.execute("DELETE FROM ofports")
            self.db.executemany("INSERT INTO ofports VALUES (?, ?, ?)",
                                [(b, i, n) for (b, i), n in sorted(assigned.items())])

    def close(self):
        self.db.close()

