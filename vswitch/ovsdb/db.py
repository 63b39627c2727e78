"""The Open_vSwitch database of one daemon: its current view, row versions,
the switch's runtime columns, transactions and the monitors to tell.

`backend` is the daemon (or a test's stand-in) with:
  config              the configuration dict now in force
  runtime             the object whose methods answer runtime columns
                      (vswitch/config/schema.py: interface_ofport, ...)
  change_config(cfg)  commit `cfg` to the store and apply it - the daemon's
                      one way to change configuration, which then calls
                      config_changed() here.

Runtime columns (Interface ofport, link_state, statistics, ...) are read
from the switch when a transaction selects them.  For monitors they are
kept in `rt` and recomputed when the configuration changes and at each
refresh() (the daemon calls it after every revalidator run, once a
second, and after netlink link events); only the columns some monitor watches are computed, and
`statistics` at most every STATS_INTERVAL seconds (OVS's default
stats-update-interval), so a monitor gets at most one update a second for
a row whose state changes and one every 5 s for busy counters.
"""
import sqlite3
import time
import uuid as uuidlib

from vswitch.ovsdb import model
from vswitch.ovsdb.transact import Transaction
from vswitch.ovsdb.types import OvsdbError

STATS_INTERVAL = 5.0
SLOW_COLUMNS = {"statistics"}       # recomputed only every STATS_INTERVAL


class Database:
    def __init__(self, backend, clock=time.monotonic):
        self.backend, self.clock = backend, clock
        self.config = backend.config
        self.cur_cfg = model.next_cfg(self.config)
        self.view = model.config_to_view(self.config, self.cur_cfg)
        self.versions = {name: {} for name in model.TABLES}
        self._stamp({name: {} for name in model.TABLES}, self.view)
        self.ref_columns = [(t.name, name, info) for t in model.TABLES.values()
                            for name, info in t.columns.items() if info.type.refs()]
        self.monitors = []
        self.rt = {}                # table -> uuid -> {column: datum} (watched runtime columns)
        self.rt_columns = {}        # (table, column) -> number of monitors watching it
        self.stats_due = 0.0
        self.on_change = []         # callbacks after every change (the server retries waits)

    # ------------------------------------------------------------ reading

    def version(self, table, uuid):
        return self.versions[table].get(uuid) or str(uuidlib.uuid4())

    def _stamp(self, old_view, new_view):
        for table, rows in new_view.items():
            versions, old_rows = self.versions[table], old_view[table]
            for uuid, row in rows.items():
                if old_rows.get(uuid) != row or uuid not in versions:
                    versions[uuid] = str(uuidlib.uuid4())
            for uuid in [u for u in versions if u not in rows]:
                del versions[uuid]

    def runtime_value(self, table, uuid, row, column):
        """A runtime column of a row as the switch has it now (the column's
        default when the switch does not know the row)."""
        info = model.TABLES[table].columns[column]
        default = model.TABLES[table].defaults[column]
        if info.kind != "runtime":
            return row.get(column, default)
        method, keyed = info.runtime
        names = row.get("name")
        name = names[0] if names else uuid
        runtime = self.backend.runtime
        try:
            if method == "bridge_datapath_id":
                ofs = (getattr(runtime, "of", None) or {}).get(name)
                return (f"{ofs.datapath_id:016x}",) if ofs is not None and ofs.datapath_id else default
            function = getattr(runtime, method, None)
            if function is None:
                return default
            value = function(table, column, name) if keyed else function(name)
        except Exception:   # a row the switch has not opened yet, or is closing
            return default
        return _fit(info.type, model.to_datum(value))

    def rows(self, table):
        """(uuid, row with the watched runtime columns) of every row."""
        rt = self.rt.get(table, {})
        for uuid, row in self.view[table].items():
            extra = rt.get(uuid)
            yield uuid, ({**row, **extra} if extra else row)

    # ------------------------------------------------------------ changing

    def transact(self, ops, locks=(), can_block=True):
        """Runs `ops` -> the reply's result array; raises WaitBlocked."""
        txn = Transaction(self, locks, can_block)
        results, config = txn.execute(ops)
        if config is not None:
            try:
                self.backend.change_config(config)
            except OvsdbError as exc:
                results.append(exc.to_json())
            except (OSError, sqlite3.Error) as exc:
                results.append({"error": "I/O error", "details": f"cannot commit: {exc}"})
        return results

    def config_changed(self, config):
        """The daemon committed and applied `config`: new view, cur_cfg
        caught up, monitors told."""
        old_view, old_rt = self.view, self.rt
        self.config = config
        self.cur_cfg = model.next_cfg(config)
        self.view = model.config_to_view(config, self.cur_cfg)
        self._stamp(old_view, self.view)
        self.rt = self._compute_rt(self.rt_columns, old_rt, slow=True)
        self._publish(self._changes(old_view, self.view, old_rt, self.rt))
        for callback in list(self.on_change):
            callback()

    def watches_runtime(self):
        """Whether a monitor watches a runtime column, i.e. refresh() has
        work (the revalidator spends no CPU break on it otherwise)."""
        return bool(self.rt_columns)

    def refresh(self):
        """Recompute the watched runtime columns; tell monitors what moved."""
        if not self.rt_columns:
            return
        now = self.clock()
        slow = now >= self.stats_due
        if slow:
            self.stats_due = now + STATS_INTERVAL
        old_rt = self.rt
        self.rt = self._compute_rt(self.rt_columns, old_rt, slow)
        self._publish(self._changes(self.view, self.view, old_rt, self.rt))

    def _compute_rt(self, columns, old_rt, slow):
        rt = {}
        for table, column in columns:
            old_table = old_rt.get(table, {})
            rows = rt.setdefault(table, {})
            for uuid, row in self.view[table].items():
                if slow or column not in SLOW_COLUMNS or column not in old_table.get(uuid, {}):
                    value = self.runtime_value(table, uuid, row, column)
                else:
                    value = old_table[uuid][column]
                rows.setdefault(uuid, {})[column] = value
        return rt

    def _changes(self, old_view, new_view, old_rt, new_rt):
        watched = {name for m in self.monitors for name in m.tables}
        changes = {}
        for table in watched:
            old_rows, new_rows = old_view[table], new_view[table]
            ort, nrt = old_rt.get(table, {}), new_rt.get(table, {})
            rows = {}
            for uuid in old_rows.keys() | new_rows.keys():
                old, new = old_rows.get(uuid), new_rows.get(uuid)
                orun, nrun = ort.get(uuid), nrt.get(uuid)
                if old == new and orun == nrun:
                    continue
                rows[uuid] = ({**old, **(orun or {})} if old is not None else None,
                              {**new, **(nrun or {})} if new is not None else None)
            if rows:
                changes[table] = rows
        return changes

    def _publish(self, changes):
        if not changes:
            return
        for monitor in list(self.monitors):
            updates = monitor.updates(changes)
            if updates:
                monitor.conn.notify(*monitor.notification(updates))

    # ------------------------------------------------------------ monitors

    def add_monitor(self, monitor):
        """Registers `monitor` -> its initial <table-updates>."""
        new = monitor.runtime_columns() - set(self.rt_columns)
        for key in monitor.runtime_columns():
            self.rt_columns[key] = self.rt_columns.get(key, 0) + 1
        if new:
            self.rt = self._merge_rt(new)
        self.monitors.append(monitor)
        return monitor.initial(self.rows)

    def _merge_rt(self, columns):
        rt = {table: {uuid: dict(values) for uuid, values in rows.items()} for table, rows in self.rt.items()}
        for table, column in columns:
            rows = rt.setdefault(table, {})
            for uuid, row in self.view[table].items():
                rows.setdefault(uuid, {})[column] = self.runtime_value(table, uuid, row, column)
        return rt

    def remove_monitor(self, monitor):
        if monitor not in self.monitors:
            return
        self.monitors.remove(monitor)
        for key in monitor.runtime_columns():
            self.rt_columns[key] -= 1
            if not self.rt_columns[key]:
                del self.rt_columns[key]
                table, column = key
                for values in self.rt.get(table, {}).values():
                    values.pop(column, None)


def _fit(ctype, datum):
    """A runtime value that does not fit the column's type is left out
    rather than sent to clients that would reject the whole update."""
    kinds = {"integer": int, "real": (int, float), "boolean": bool, "string": str, "uuid": str}
    key = kinds[ctype.key.type]
    if len(datum) > ctype.n_max:
        return ctype.default()
    if ctype.is_map():
        value = kinds[ctype.value.type]
        if all(isinstance(k, key) and isinstance(v, value) for k, v in datum):
            return datum
        return ctype.default()
    if all(isinstance(a, key) and (key is bool or not isinstance(a, bool)) for a in datum):
        return datum
    return ctype.default()
