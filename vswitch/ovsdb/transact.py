"""RFC 7047 `transact`: the operations (5.2) on a copy of the database view,
then OVSDB's commit-time rules, then one config commit through the daemon.

A Transaction reads the Database's current view and copies a table (and a
row) only when it writes it.  At the end, if anything was written:
  1. weak references to rows that are gone are dropped;
  2. every strong reference must name an existing row
     ("referential integrity violation", with ovsdb-server's wording);
  3. rows of non-root tables that no strong reference reaches are deleted
     (garbage collection, repeated until nothing more goes);
  4. maxRows and indexes ("constraint violation");
  5. the view becomes a config dict (model.view_to_config), which vswitch's
     own validation checks (config/schema.py) and the daemon commits and
     applies - the same path as vsctl's commands.
Writes to columns the switch does not implement or fills in itself are
refused when the operation runs, naming the column (see model.py).

An operation's error ends the transaction: the reply holds the results so
far and the error; a commit error is one more element after all of them,
as ovsdb-server does.  A "wait" that is not satisfied and has a timeout
raises WaitBlocked: the server runs the whole transaction again after each
change until it passes or times out.
"""
import uuid as uuidlib

from vswitch.ovsdb import model
from vswitch.ovsdb.types import (UUID_RE, OvsdbError, Type, constraint, datum_json, evaluate, mutate, parse_condition,
                                 parse_datum, parse_mutation, referenced_uuids, syntax_error, without_refs)

UUID_TYPE = Type.from_json("uuid")


class WaitBlocked(Exception):
    """A "wait" operation is not satisfied yet; `timeout` in ms (None: forever)."""

    def __init__(self, timeout):
        super().__init__(timeout)
        self.timeout = timeout


class SymbolTable:
    """named-uuid -> uuid; a name may be used before its insert defines it."""

    def __init__(self):
        self.symbols = {}

    def reference(self, name):
        return self.symbols.setdefault(name, [str(uuidlib.uuid4()), False])[0]

    def define(self, name):
        entry = self.symbols.setdefault(name, [str(uuidlib.uuid4()), False])
        if entry[1]:
            raise OvsdbError("duplicate uuid-name", 'This "uuid-name" appeared on an earlier "insert" operation.',
                             syntax=name)
        entry[1] = True
        return entry[0]


class ParseError(OvsdbError):
    """A malformed operation: its message gets ovsdb-server's "Parsing
    ovsdb operation I of N failed: " prefix."""

    def __init__(self, details, syntax=None):
        super().__init__("syntax error", details, syntax)


def _member(op, name, kinds, required=True, default=None):
    if name not in op:
        if required:
            raise ParseError(f"Required '{name}' member is missing.", op)
        return default
    value = op[name]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ParseError(f"Type mismatch for member '{name}'.", op)
    return value


class Transaction:
    def __init__(self, db, locks=(), can_block=True):
        self.db = db
        self.orig = db.view
        self.tables = {}            # table -> {uuid: row}, copied on first write
        self.locks = set(locks)
        self.can_block = can_block
        self.symtab = SymbolTable()
        self.changed = False

    # ------------------------------------------------------------ rows

    def rows(self, table):
        return self.tables[table] if table in self.tables else self.orig[table]

    def _writable(self, table):
        if table not in self.tables:
            self.tables[table] = dict(self.orig[table])
        self.changed = True
        return self.tables[table]

    def value(self, table, uuid, row, column):
        if column == "_uuid":
            return (uuid,)
        if column == "_version":
            return (self.db.version(table, uuid),)
        if column in row:
            return row[column]
        if uuid in self.orig[table]:
            return self.db.runtime_value(table, uuid, row, column)
        return model.TABLES[table].defaults[column]

    # ------------------------------------------------------------ parsing helpers

    def _table(self, op):
        name = op.get("table")
        if not isinstance(name, str) or name not in model.TABLES:
            raise syntax_error(f"No table named {name}.", op)
        return model.TABLES[name]

    def _column(self, table, name, syntax, allow_meta=False):
        if allow_meta and name in ("_uuid", "_version"):
            return None
        info = table.columns.get(name) if isinstance(name, str) else None
        if info is None:
            raise OvsdbError("unknown column", f"No column {name} in table {table.name}.", syntax)
        return info

    def _column_type(self, table, name, syntax):
        info = self._column(table, name, syntax, allow_meta=True)
        return UUID_TYPE if info is None else info.type

    def _where(self, table, op):
        where = _member(op, "where", list)
        clauses = []
        for clause in where:
            if not (isinstance(clause, list) and len(clause) == 3 and isinstance(clause[1], str)):
                raise syntax_error("Parse error in condition.", clause)
            ctype = self._column_type(table, clause[0], clause)
            function, arg = parse_condition(ctype, clause[0], table.name, clause, self.symtab)
            clauses.append((clause[0], function, arg))
        return clauses

    def _matching(self, table, clauses):
        rows = self.rows(table.name)
        candidates = rows.items()
        for column, function, arg in clauses:
            if column == "_uuid" and function == "==":      # the usual case: one row by uuid
                candidates = [(arg[0], rows[arg[0]])] if arg[0] in rows else []
                break
        return [(uuid, row) for uuid, row in candidates
                if all(evaluate(function, arg, self.value(table.name, uuid, row, column))
                       for column, function, arg in clauses)]

    def _row(self, table, row_js, syntax, update=False):
        if not isinstance(row_js, dict):
            raise syntax_error("Object expected.", syntax)
        values = {}
        for name, js in row_js.items():
            if name in ("_uuid", "_version"):
                parse_datum(UUID_TYPE, js)      # ovsdb-server's error for a bad one
                raise constraint(f"Cannot set column {name} in table {table.name}.")
            info = self._column(table, name, row_js)
            if update and not info.mutable:
                raise OvsdbError("constraint violation",
                                 f"Cannot update immutable column {name} in table {table.name}.", syntax)
            values[name] = (info, parse_datum(info.type, js, self.symtab))
        return values

    def _check_write(self, table, info, datum, current):
        """vswitch's rule for the columns it does not store (see model.py)."""
        if info.writable or datum == current:
            return
        fixed = model.FIXED.get((table.name, info.name))
        if datum == info.type.default() or datum == fixed or datum in info.accepts:
            return
        if info.kind == "unsupported":
            raise constraint(f"{table.name} column {info.name}: vswitch does not implement it, so only its "
                             f"default value {model.value_text(info, info.type.default())} is accepted")
        raise constraint(f"{table.name} column {info.name} is read-only: vswitch fills it in")

    # ------------------------------------------------------------ operations

    def op_insert(self, op):
        table = self._table(op)
        values = self._row(table, op.get("row", {}), op)
        name = _member(op, "uuid-name", str, required=False)
        if not table.implemented:
            raise constraint(f"vswitch does not implement table {table.name}: it stays empty")
        if "uuid" in op:                        # OVS's extension: the new row's uuid
            uuid = op["uuid"]
            if not isinstance(uuid, str) or not UUID_RE.match(uuid):
                raise ParseError("Type mismatch for member 'uuid'.", op)
            uuid = uuid.lower()
            if uuid in self.rows(table.name):
                raise OvsdbError("duplicate uuid", "This UUID would duplicate a UUID already present "
                                                   "within the table or deleted within the same transaction.")
            if name is not None:
                entry = self.symtab.symbols.get(name)
                if entry is not None and (entry[1] or entry[0] != uuid):
                    raise OvsdbError("duplicate uuid-name", f'"{name}" already names another row in this '
                                     "transaction", syntax=name)
                self.symtab.symbols[name] = [uuid, True]
        else:
            uuid = self.symtab.define(name) if name is not None else str(uuidlib.uuid4())
        row = dict(table.row_defaults)
        for column in row:
            fixed = model.FIXED.get((table.name, column))
            if fixed is not None:
                row[column] = fixed
        for column, (info, datum) in values.items():
            self._check_write(table, info, datum, None)
            if info.kind == "stored":
                row[column] = datum
        self._writable(table.name)[uuid] = row
        return {"uuid": ["uuid", uuid]}

    def op_select(self, op):
        table = self._table(op)
        clauses = self._where(table, op)
        columns = _member(op, "columns", list, required=False)
        if columns is None:
            columns = ["_uuid", "_version", *table.columns]
        types = [(name, self._column_type(table, name, op)) for name in columns]
        return {"rows": [{name: datum_json(ctype, self.value(table.name, uuid, row, name)) for name, ctype in types}
                         for uuid, row in self._matching(table, clauses)]}

    def op_update(self, op):
        table = self._table(op)
        values = self._row(table, _member(op, "row", dict), op, update=True)
        clauses = self._where(table, op)
        matched = self._matching(table, clauses)
        for uuid, row in matched:
            new = dict(row)
            for column, (info, datum) in values.items():
                self._check_write(table, info, datum, self.value(table.name, uuid, row, column))
                if info.kind == "stored":
                    new[column] = datum
            if new != row:
                self._writable(table.name)[uuid] = new
        return {"count": len(matched)}

    def op_mutate(self, op):
        table = self._table(op)
        mutations = []
        for mutation in _member(op, "mutations", list):
            if not (isinstance(mutation, list) and len(mutation) == 3 and isinstance(mutation[1], str)):
                raise syntax_error("Parse error in mutation.", mutation)
            if mutation[0] in ("_uuid", "_version"):
                raise OvsdbError("constraint violation",
                                 f"Cannot mutate immutable column {mutation[0]} in table {table.name}.", mutation)
            info = self._column(table, mutation[0], mutation)
            if not info.mutable:
                raise OvsdbError("constraint violation",
                                 f"Cannot mutate immutable column {info.name} in table {table.name}.", mutation)
            mutations.append((info, *parse_mutation(info.type, info.name, mutation, self.symtab)))
        clauses = self._where(table, op)
        matched = self._matching(table, clauses)
        for uuid, row in matched:
            new = dict(row)
            for info, mutator, arg in mutations:
                current = self.value(table.name, uuid, new, info.name)
                result = mutate(info.type, current, mutator, arg)
                self._check_write(table, info, result, current)
                if info.kind == "stored":
                    new[info.name] = result
            if new != row:
                self._writable(table.name)[uuid] = new
        return {"count": len(matched)}

    def op_delete(self, op):
        table = self._table(op)
        matched = self._matching(table, self._where(table, op))
        if matched:
            rows = self._writable(table.name)
            for uuid, _ in matched:
                del rows[uuid]
        return {"count": len(matched)}

    def op_wait(self, op):
        table = self._table(op)
        timeout = _member(op, "timeout", (int, float), required=False)
        clauses = self._where(table, op)
        columns = _member(op, "columns", list, required=False)
        if columns is None:
            columns = list(table.columns)
        types = {name: self._column_type(table, name, op) for name in columns}
        until = _member(op, "until", str)
        if until not in ("==", "!="):
            raise syntax_error(f'"until" must be "==" or "!=", not "{until}"', op)
        expected = []
        for row_js in _member(op, "rows", list):
            if not isinstance(row_js, dict):
                raise syntax_error("Object expected.", row_js)
            row = {}
            for name, js in row_js.items():
                if name not in types:
                    raise syntax_error(f"wait row has column {name} not in \"columns\"", row_js)
                row[name] = parse_datum(types[name], js, self.symtab)
            expected.append(tuple(row.get(name, model.TABLES[table.name].defaults.get(name, ()))
                                  for name in columns))
        actual = [tuple(self.value(table.name, uuid, row, name) for name in columns)
                  for uuid, row in self._matching(table, clauses)]
        equal = sorted(set(actual)) == sorted(set(expected))
        if equal == (until == "=="):
            return {}
        if timeout == 0:
            raise OvsdbError("timed out", '"where" clause test failed')
        if self.can_block:
            raise WaitBlocked(timeout)
        raise OvsdbError("timed out", f'"wait" timed out after {timeout:g} ms')

    def op_commit(self, op):
        _member(op, "durable", bool)
        return {}       # every commit is durable (SQLite, synchronous=FULL)

    def op_abort(self, op):
        raise OvsdbError("aborted", "aborted by request")

    def op_comment(self, op):
        _member(op, "comment", str)
        return {}

    def op_assert(self, op):
        lock = _member(op, "lock", str)
        if lock not in self.locks:
            raise OvsdbError("not owner", f"Asserted lock {lock} not held.")
        return {}

    # ------------------------------------------------------------ running

    def execute(self, ops):
        """-> (results, config or None): the reply's result array and the
        new config to commit (None when nothing changed or an op failed)."""
        results = []
        n = len(ops)
        for i, op in enumerate(ops, 1):
            try:
                if not isinstance(op, dict):
                    raise syntax_error(f"Parsing ovsdb operation {i} of {n} failed: Object expected.")
                handler = getattr(self, f"op_{op.get('op')}", None) if isinstance(op.get("op"), str) else None
                if handler is None:
                    raise syntax_error(f'Parsing ovsdb operation {i} of {n} failed: No operation '
                                       f'"{op.get("op")}"', op)
                if "table" in op and not (isinstance(op["table"], str) and op["table"] in model.TABLES):
                    raise syntax_error(f"Parsing ovsdb operation {i} of {n} failed: No table named "
                                       f"{op['table']}.", op)
                results.append(handler(op))
            except OvsdbError as exc:
                if isinstance(exc, ParseError):
                    exc.details = f"Parsing ovsdb operation {i} of {n} failed: {exc.details}"
                results.append(exc.to_json())
                return results + [None] * (n - i), None
        if not self.changed:
            return results, None
        try:
            config = self.finish()
        except OvsdbError as exc:
            results.append(exc.to_json())
            return results, None
        return results, config

    def finish(self):
        view = {name: self.rows(name) for name in model.TABLES}
        self._drop_weak_refs(view)
        self._check_refs(view)
        self._collect_garbage(view)
        self._drop_weak_refs(view)
        for table in model.TABLES.values():
            rows = view[table.name]
            if table.max_rows is not None and len(rows) > table.max_rows:
                raise constraint(f'transaction causes "{table.name}" table to contain {len(rows)} rows, greater '
                                 f"than the schema-defined limit of {table.max_rows} row(s)")
            for index in table.indexes:
                seen = {}
                for uuid, row in rows.items():
                    key = tuple(row[column] for column in index)
                    if key in seen:
                        first, second = sorted((seen[key], uuid), key=lambda u: (u not in self.orig[table.name], u))
                        values = ", ".join(model.value_text(table.columns[c], row[c]) for c in index)
                        names = ", ".join(f'"{c}"' for c in index)
                        raise constraint(f'Transaction causes multiple rows in "{table.name}" table to have '
                                         f"identical values ({values}) for index on "
                                         f"column{'s' if len(index) > 1 else ''} {names}.  "
                                         f"First row, with UUID {first}, {self._history(table.name, first, rows)}.  "
                                         f"Second row, with UUID {second}, {self._history(table.name, second, rows)}.")
                    seen[key] = uuid
        return model.view_to_config(view, self.db.config)

    def _history(self, table, uuid, rows):
        if uuid not in self.orig[table]:
            return "was inserted by this transaction"
        if self.orig[table][uuid] == rows[uuid]:
            return "existed in the database before this transaction and was not modified by the transaction"
        return "existed in the database before this transaction and was modified by the transaction"

    def _ref_columns(self):
        return self.db.ref_columns

    def _drop_weak_refs(self, view):
        for table, column, info in self._ref_columns():
            if not any(base.ref_type == "weak" for base, _ in info.type.refs()):
                continue
            rows = view[table]
            for uuid, row in list(rows.items()):
                datum = row[column]
                dead = {u for base, u in referenced_uuids(info.type, datum)
                        if base.ref_type == "weak" and u not in view[base.ref_table]}
                if dead:
                    rows = self._copy(view, table)
                    rows[uuid] = dict(row, **{column: without_refs(info.type, datum, dead)})

    def _copy(self, view, table):
        if table not in self.tables:
            self.tables[table] = dict(self.orig[table])
        view[table] = self.tables[table]
        return view[table]

    def _check_refs(self, view):
        for table, column, info in self._ref_columns():
            for uuid, row in view[table].items():
                for base, target in referenced_uuids(info.type, row[column]):
                    if base.ref_type != "strong" or target in view[base.ref_table]:
                        continue
                    if target in self.orig[base.ref_table]:
                        count = sum(1 for t, c, i in self._ref_columns() for r in view[t].values()
                                    for b, u in referenced_uuids(i.type, r[c])
                                    if u == target and b.ref_table == base.ref_table and b.ref_type == "strong")
                        raise OvsdbError("referential integrity violation",
                                         f"cannot delete {base.ref_table} row {target} because of {count} "
                                         "remaining reference(s)")
                    raise OvsdbError("referential integrity violation",
                                     f"Table {table} column {column} row {uuid} references nonexistent row "
                                     f"{target} in table {base.ref_table}.")

    def _collect_garbage(self, view):
        while True:
            referenced = set()
            for table, column, info in self._ref_columns():
                for row in view[table].values():
                    referenced.update(u for base, u in referenced_uuids(info.type, row[column])
                                      if base.ref_type == "strong")
            gone = [(table.name, uuid) for table in model.TABLES.values() if not table.is_root
                    for uuid in view[table.name] if uuid not in referenced]
            if not gone:
                return
            for table, uuid in gone:
                del self._copy(view, table)[uuid]
