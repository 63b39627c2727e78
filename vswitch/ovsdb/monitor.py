"""`monitor` (RFC 7047 4.1.5), `monitor_cond` / `monitor_cond_change` and
`monitor_cond_since` (ovsdb-server(7)): which rows and columns a client
watches, its initial contents and the updates to send after a change.

Version 1 ("update"): {"new": all watched columns} on insert, {"old": all}
on delete, {"old": changed columns, "new": all} on modify.  Versions 2 and
3 ("update2", "update3"): "initial"/"insert" with the non-default columns,
"delete": null, and "modify" with each changed column's *difference*: the
new value of a column holding at most one value, the elements added or
removed for a set, the added, removed (old value) and changed (new value)
pairs for a map - as ovsdb-server sends them, and as OVS's IDLs apply them.
vswitch keeps no transaction history: monitor_cond_since always answers
"not found" with the full contents, and the transaction id is all zeros
(as ovsdb-server's for a standalone database).

`changes` given to `updates` are {table: {uuid: (old row, new row)}}, rows
being {column: datum} with None for a row that does not exist on that side.
"""
from vswitch.ovsdb import model
from vswitch.ovsdb.types import (OvsdbError, Type, atom_json, datum_json, evaluate, parse_condition,
                                 syntax_error)

ZERO_TXN = "00000000-0000-0000-0000-000000000000"
SELECT = ("initial", "insert", "delete", "modify")
UUID_TYPE = Type.from_json("uuid")
_MISSING = object()


class TableMonitor:
    """What one monitor watches of a table.  `selects` is {column: {kinds}}:
    as in ovsdb-server, each column carries the select flags of the request
    that named it, and a row update of a kind holds only the columns that
    select that kind."""

    def __init__(self, table, selects, where):
        self.table, self.selects = table, selects
        self.columns = list(selects)
        self.where = where          # [(column, function, datum)]; None: every row; False: no row
        self.select = {kind: False for kind in SELECT}
        self.types = {}
        for kind in SELECT:
            self.types[kind] = [(name, table.columns[name].type) for name, kinds in selects.items() if kind in kinds]
            self.select[kind] = bool(self.types[kind])

    def matches(self, uuid, row):
        if self.where is None:
            return True
        if self.where is False:
            return False
        return all(evaluate(function, arg, (uuid,) if column == "_uuid" else row[column])
                   for column, function, arg in self.where)

    def condition_columns(self):
        return [c for c, _, _ in self.where or () if c != "_uuid"]


def parse_where(table, where, syntax):
    if not isinstance(where, list):
        raise syntax_error("where must be an array", syntax)
    clauses = []
    for clause in where:
        if clause is True:
            continue
        if clause is False:
            return False
        if not (isinstance(clause, list) and len(clause) == 3 and isinstance(clause[1], str)):
            raise syntax_error("Parse error in condition.", clause)
        name = clause[0]
        if name == "_uuid":
            ctype = UUID_TYPE
        elif isinstance(name, str) and name in table.columns:
            ctype = table.columns[name].type
        else:
            raise syntax_error(f"No column {name} in table {table.name}.", clause)
        function, arg = parse_condition(ctype, name, table.name, clause)
        clauses.append((name, function, arg))
    return clauses or None


def parse_requests(requests, version):
    """{table: <monitor-request> or [<monitor-request>...]} -> {table: TableMonitor}."""
    if not isinstance(requests, dict):
        raise syntax_error("monitor requests must be an object", requests)
    tables = {}
    for name, reqs in requests.items():
        table = model.TABLES.get(name)
        if table is None:
            raise syntax_error(f"no table named {name}", requests)
        if isinstance(reqs, dict):
            reqs = [reqs]
        if not isinstance(reqs, list) or not reqs:
            raise syntax_error("monitor request must be an object or a non-empty array", reqs)
        selects, where = {}, None
        for req in reqs:
            if not isinstance(req, dict):
                raise syntax_error("monitor request must be an object", req)
            names = req.get("columns", list(table.columns))
            if not isinstance(names, list):
                raise syntax_error("columns must be an array", req)
            flags = req.get("select", {})
            if not isinstance(flags, dict):
                raise syntax_error("select must be an object", req)
            kinds = set()
            for key in SELECT:
                value = flags.get(key, True)
                if not isinstance(value, bool):
                    raise syntax_error(f'"{key}" must be a boolean', req)
                if value:
                    kinds.add(key)
            for column in names:
                if not isinstance(column, str) or column not in table.columns:
                    raise syntax_error(f"{name} table does not contain column {column}", req)
                selects.setdefault(column, set()).update(kinds)
            if "where" in req:
                if version == 1:
                    raise syntax_error('"where" is for monitor_cond', req)
                where = parse_where(table, req["where"], req)
        tables[name] = TableMonitor(table, selects, where)
    return tables


def _row_json(types, row, skip_defaults):
    return {name: datum_json(ctype, row[name]) for name, ctype in types
            if not (skip_defaults and row[name] == ctype.default())}


def diff_json(ctype, old, new):
    """update2's <diff> of one column (see the module doc)."""
    if ctype.is_map():
        before, after = dict(old), dict(new)
        pairs = [(k, v) for k, v in before.items() if k not in after]
        pairs += [(k, v) for k, v in after.items() if before.get(k, _MISSING) != v]
        return ["map", [[atom_json(ctype.key, k), atom_json(ctype.value, v)] for k, v in sorted(pairs)]]
    if ctype.n_max == 1:
        return datum_json(ctype, new)
    toggled = tuple(sorted(set(old) ^ set(new)))
    return datum_json(ctype.relaxed(), toggled)


class Monitor:
    """One monitor of one connection."""

    def __init__(self, conn, monid, version, tables):
        self.conn, self.monid, self.version, self.tables = conn, monid, version, tables

    def runtime_columns(self):
        return {(name, column) for name, tm in self.tables.items()
                for column in [*tm.columns, *tm.condition_columns()]
                if tm.table.columns[column].kind == "runtime"}

    def _row_update(self, tm, kind, old, new):
        types = tm.types[kind]
        if self.version == 1:
            if kind == "delete":
                return {"old": _row_json(types, old, False)}
            update = {"new": _row_json(types, new, False)}
            if kind == "modify":
                update["old"] = {name: datum_json(ctype, old[name]) for name, ctype in types
                                 if old[name] != new[name]}
            return update
        if kind == "delete":
            return {"delete": None}
        if kind == "modify":
            return {"modify": {name: diff_json(ctype, old[name], new[name]) for name, ctype in types
                               if old[name] != new[name]}}
        return {kind: _row_json(types, new, True)}

    def initial(self, rows_of):
        """The reply's <table-updates>: every watched row, if "initial" is selected."""
        updates = {}
        for name, tm in self.tables.items():
            if not tm.select["initial"]:
                continue
            rows = {uuid: self._row_update(tm, "initial", None, row)
                    for uuid, row in rows_of(name) if tm.matches(uuid, row)}
            if rows:
                updates[name] = rows
        return updates

    def updates(self, changes):
        updates = {}
        for name, tm in self.tables.items():
            rows = {}
            for uuid, (old, new) in changes.get(name, {}).items():
                was = old is not None and tm.matches(uuid, old)
                now = new is not None and tm.matches(uuid, new)
                if was and now:
                    if any(old[c] != new[c] for c, _ in tm.types["modify"]):
                        rows[uuid] = self._row_update(tm, "modify", old, new)
                elif was and tm.select["delete"]:
                    rows[uuid] = self._row_update(tm, "delete", old, None)
                elif now and tm.select["insert"]:
                    rows[uuid] = self._row_update(tm, "insert", None, new)
            if rows:
                updates[name] = rows
        return updates

    def notification(self, updates):
        """(method, params) of the notification carrying `updates`."""
        if self.version == 1:
            return "update", [self.monid, updates]
        if self.version == 2:
            return "update2", [self.monid, updates]
        return "update3", [self.monid, ZERO_TXN, updates]

    def change_conditions(self, requests, rows_of):
        """monitor_cond_change: new conditions -> the updates that move rows
        in or out of view."""
        if not isinstance(requests, dict):
            raise syntax_error("monitor_cond_change requests must be an object", requests)
        updates = {}
        for name, reqs in requests.items():
            tm = self.tables.get(name)
            if tm is None:
                raise syntax_error(f"no table named {name} in this monitor", requests)
            if isinstance(reqs, dict):
                reqs = [reqs]
            if not isinstance(reqs, list) or not reqs or not isinstance(reqs[0], dict):
                raise syntax_error("monitor_cond_change request must be an object or an array", reqs)
            req = reqs[0]
            if "columns" in req and sorted(req["columns"]) != sorted(tm.columns):
                raise OvsdbError("not supported", "monitor_cond_change cannot change the columns")
            if "where" not in req:
                continue
            old_tm = TableMonitor(tm.table, tm.selects, tm.where)
            tm.where = parse_where(tm.table, req["where"], req)
            rows = {}
            for uuid, row in rows_of(name):
                was, now = old_tm.matches(uuid, row), tm.matches(uuid, row)
                if was and not now:
                    rows[uuid] = self._row_update(tm, "delete", row, None)
                elif now and not was:
                    rows[uuid] = self._row_update(tm, "insert", None, row)
            if rows:
                updates[name] = rows
        return updates
