"""The vsctl command engine: ovs-vsctl-style commands run on a config copy.

`execute(config, commands, runtime)` runs a `--` chain as one transaction on a
deep copy: every command is parsed and checked first, then run in order; any
error raises CommandError and the caller keeps its old config. Each command
yields one output (str, list, dict, bool or None) that the client renders.

The command table `COMMANDS` (name -> Command) is the single source for
argument counts, allowed options, read-only-ness and --help text. Commands
that read live state (fdb-show, dump-ports, ...) and the Interface runtime
columns ask the `runtime` object the daemon passes in.
"""
import copy
import uuid as uuidlib
from dataclasses import dataclass

from vswitch import __version__
from vswitch.config import schema
from vswitch.config.schema import SchemaError


class CommandError(Exception):
    """A command that cannot run; the message says exactly why."""


@dataclass(frozen=True)
class Command:
    name: str
    min_args: int
    max_args: object            # int, or None for "no limit"
    options: dict               # "--name" -> True if it takes "=VALUE"
    handler: object             # handler(txn, args, opts) -> output
    read_only: bool             # never changes the configuration
    usage: str = ""
    help: str = ""


# ---------------------------------------------------------------- transaction

class Txn:
    """The config being changed by one command chain, plus lookups on it."""

    def __init__(self, config, runtime):
        self.config, self.runtime = config, runtime
        # --id=@name symbols: name -> [uuid, created]; a name used before its
        # --id command gets a uuid at once (its create will use it).
        self.symbols = {}
        for table in schema.TABLES:
            rows = config.setdefault(table, {})
            # Rows stored before a column existed get its empty value.
            for row in rows.values():
                for column in schema.stored_columns(table):
                    row.setdefault(column.name, column.type.empty())

    def find(self, table, name):
        for uuid, row in self.config[table].items():
            if row.get("name") == name:   # SSL rows have no name
                return uuid, row
        return None, None

    def bridge(self, name):
        uuid, row = self.find("Bridge", name)
        if row is None:
            raise CommandError(f"no bridge named {name}")
        return uuid, row

    def owner(self, table, refs_column, child_uuid):
        """The row of `table` whose `refs_column` holds `child_uuid`."""
        for uuid, row in self.config[table].items():
            if child_uuid in row[refs_column]:
                return uuid, row
        return None, None

    def port(self, name):
        """(port uuid, port row, bridge row) or raise 'no port named'."""
        uuid, row = self.find("Port", name)
        if row is None:
            raise CommandError(f"no port named {name}")
        return uuid, row, self.owner("Bridge", "ports", uuid)[1]

    def bridge_of_name(self, table, name):
        """Name of the bridge holding the Port or Interface called `name`."""
        uuid, _ = self.find(table, name)
        if uuid is None:
            return None
        if table == "Interface":
            uuid, _ = self.owner("Port", "interfaces", uuid)
        return self.owner("Bridge", "ports", uuid)[1]["name"]

    def record(self, table, key, must_exist=True):
        """A row by uuid or name, as ovs-vsctl's RECORD argument (NetFlow,
        sFlow and IPFIX rows by the name of the bridge that has them)."""
        if key in self.config[table]:
            return key, self.config[table][key]
        if key == "." and table == "SSL" and len(self.config[table]) == 1:
            return next(iter(self.config[table].items()))   # ovs-vsctl's "." for the SSL row
        if table in ("NetFlow", "sFlow", "IPFIX"):
            _, bridge = self.find("Bridge", key)
            uuid = bridge and bridge[schema.NON_ROOT[table]]
            if uuid in self.config[table]:
                return uuid, self.config[table][uuid]
        else:
            matches = [uuid for uuid, row in self.config[table].items() if row.get("name") == key]
            if len(matches) > 1:
                raise CommandError(f'multiple rows in {table} match "{key}"')
            if matches:
                return matches[0], self.config[table][matches[0]]
        if not must_exist:
            return None, None
        raise CommandError(f'no row "{key}" in table {table}')

    def symbol(self, name, define=False):
        """The uuid of `@name`; `define` for an --id option (once per name)."""
        if not name.startswith("@"):
            raise CommandError(f'row id "{name}" does not begin with "@"')
        entry = self.symbols.setdefault(name, [str(uuidlib.uuid4()), False])
        if define:
            if entry[1]:
                raise CommandError(f'row id "{name}" may only be specified on one --id option')
            entry[1] = True
        return entry[0]

    def resolve(self, column, value):
        """A parsed value with its `@name` references replaced by uuids."""
        if not isinstance(column.type, schema.RefType):
            return value
        if isinstance(column.type, schema.RefMapType):
            return {key: self.symbol(v) if v.startswith("@") else v for key, v in value.items()}
        if column.type.single:
            return self.symbol(value) if value is not None and value.startswith("@") else value
        return sorted({self.symbol(v) if v.startswith("@") else v for v in value})

    def insert(self, table, **values):
        uuid = str(uuidlib.uuid4())
        self.config[table][uuid] = schema.new_row(table, **values)
        return uuid

    def delete_port(self, port_uuid):
        for iface_uuid in self.config["Port"][port_uuid]["interfaces"]:
            del self.config["Interface"][iface_uuid]
        del self.config["Port"][port_uuid]
        for bridge in self.config["Bridge"].values():
            if port_uuid in bridge["ports"]:
                bridge["ports"].remove(port_uuid)

    def call_runtime(self, command, method, *args):
        """Ask the daemon's live state; its failures become CommandErrors."""
        function = getattr(self.runtime, method, None)
        if function is None:
            raise CommandError(f"{command}: not supported yet")
        try:
            return function(*args)
        except NotImplementedError:
            raise CommandError(f"{command}: not supported yet") from None
        except KeyError as exc:  # the runtime's "no such ...": its message as it is
            raise CommandError(str(exc.args[0]) if exc.args else f"{command}: not found") from None
        except CommandError:
            raise
        except Exception as exc:
            raise CommandError(f"{command}: {exc}") from exc


def _names(config, table, uuids):
    return sorted(config[table][uuid]["name"] for uuid in uuids)


# ---------------------------------------------------------------- bridges and ports

def cmd_add_br(txn, args, opts):
    name = args[0]
    if txn.find("Bridge", name)[1] is not None and "--may-exist" in opts:
        return None
    _check_conflicts(txn, name, f"cannot create a bridge named {name}")
    iface = txn.insert("Interface", name=name, type="internal")
    port = txn.insert("Port", name=name, interfaces=[iface])
    txn.insert("Bridge", name=name, ports=[port])
    return None


def _check_conflicts(txn, name, what):
    """A new bridge, port or interface name must be unused (ovs-vsctl's checks, in its order)."""
    if txn.find("Bridge", name)[1] is not None:
        raise CommandError(f"{what} because a bridge named {name} already exists")
    for table, noun in (("Port", "a port"), ("Interface", "an interface")):
        if txn.find(table, name)[1] is not None:
            raise CommandError(f"{what} because {noun} named {name} already exists on bridge "
                               f"{txn.bridge_of_name(table, name)}")


def cmd_del_br(txn, args, opts):
    uuid, row = txn.find("Bridge", args[0])
    if row is None:
        if "--if-exists" in opts:
            return None
        raise CommandError(f"no bridge named {args[0]}")
    for port in list(row["ports"]):
        txn.delete_port(port)
    del txn.config["Bridge"][uuid]
    return None


def cmd_list_br(txn, args, opts):
    return sorted(row["name"] for row in txn.config["Bridge"].values())


def cmd_br_exists(txn, args, opts):
    return txn.find("Bridge", args[0])[1] is not None


def _command_text(opts, command, args):
    """The command as ovs-vsctl quotes it in --may-exist errors: options, name, arguments."""
    return " ".join([*opts, command, *args])


def _add_port(txn, opts, bridge_name, port_name, iface_names, settings, command, args, fake_iface=False):
    _, bridge = txn.bridge(bridge_name)
    port_uuid, port = txn.find("Port", port_name)
    if port is not None and "--may-exist" in opts:
        actual = txn.bridge_of_name("Port", port_name)
        if actual != bridge_name:
            raise CommandError(f'"{_command_text(opts, command, args)}" but {port_name} '
                               f"is actually attached to bridge {actual}")
        have = _names(txn.config, "Interface", port["interfaces"])
        if sorted(iface_names) != have:
            raise CommandError(f'"{_command_text(opts, command, args)}" but {port_name} '
                               f"actually has interface(s) {', '.join(have)}")
        return None
    _check_conflicts(txn, port_name, f"cannot create a port named {port_name}")
    for iface in iface_names:
        _check_conflicts(txn, iface, f"cannot create an interface named {iface}")
    ifaces = [txn.insert("Interface", name=name) for name in iface_names]
    port_uuid = txn.insert("Port", name=port_name, interfaces=ifaces, bond_fake_iface=fake_iface)
    bridge["ports"].append(port_uuid)
    for setting in settings:
        _set_column("Port", txn.config["Port"][port_uuid], setting, txn)
    return None


def cmd_add_port(txn, args, opts):
    return _add_port(txn, opts, args[0], args[1], [args[1]], args[2:], "add-port", args)


def cmd_add_bond(txn, args, opts):
    """As ovs-vsctl: the interfaces end at the first argument holding "="."""
    n_ifaces = next((i for i, arg in enumerate(args[2:]) if "=" in arg), len(args) - 2)
    ifaces, settings = args[2:2 + n_ifaces], args[2 + n_ifaces:]
    if len(ifaces) < 2:
        raise CommandError(f"add-bond requires at least 2 interfaces, but only {len(ifaces)} were specified")
    return _add_port(txn, opts, args[0], args[1], ifaces, settings, "add-bond", args,
                     fake_iface="--fake-iface" in opts)


def _user_port(txn, name):
    """(uuid, row) of a port that is not a bridge's local port, or 'no port named' (ovs-vsctl's find_port)."""
    uuid, row = txn.find("Port", name)
    if row is None or txn.find("Bridge", name)[1] is not None:
        raise CommandError(f"no port named {name}")
    return uuid, row


def cmd_add_bond_iface(txn, args, opts):
    port_uuid, port = _user_port(txn, args[0])
    iface_name = args[1]
    if "--may-exist" in opts:
        iface_uuid, _ = txn.find("Interface", iface_name)
        if iface_uuid is not None:
            owner_uuid, owner = txn.owner("Port", "interfaces", iface_uuid)
            if owner_uuid == port_uuid:
                return None
            raise CommandError(f'"{_command_text(opts, "add-bond-iface", args)}" but {iface_name} '
                               f"is actually attached to port {owner['name']}")
    _check_conflicts(txn, iface_name, f"cannot create an interface named {iface_name}")
    port["interfaces"].append(txn.insert("Interface", name=iface_name))
    return None


def cmd_del_bond_iface(txn, args, opts):
    iface_name = args[-1]
    iface_uuid, _ = txn.find("Interface", iface_name)
    if iface_uuid is None or txn.find("Bridge", iface_name)[1] is not None:
        if "--if-exists" in opts:
            return None
        raise CommandError(f"no interface named {iface_name}")
    _, owner = txn.owner("Port", "interfaces", iface_uuid)
    if len(args) == 2:
        port_uuid, _ = _user_port(txn, args[0])
        if owner is not txn.config["Port"][port_uuid]:
            raise CommandError(f"port {args[0]} does not have an interface {iface_name}")
    if len(owner["interfaces"]) == 1:
        raise CommandError(f"cannot delete last interface from port {owner['name']}")
    owner["interfaces"].remove(iface_uuid)
    del txn.config["Interface"][iface_uuid]
    return None


def cmd_del_port(txn, args, opts):
    port_name = args[-1]
    if len(args) == 2:
        txn.bridge(args[0])
    if txn.find("Port", port_name)[1] is None and "--if-exists" in opts:
        return None
    uuid, _, bridge = txn.port(port_name)
    if len(args) == 2 and bridge["name"] != args[0]:
        raise CommandError(f"bridge {args[0]} does not have a port {port_name}")
    if port_name == bridge["name"]:
        raise CommandError(f"cannot delete port {port_name} because it is the local port for bridge "
                           f"{port_name} (deleting this port requires deleting the entire bridge)")
    txn.delete_port(uuid)
    return None


def _user_ports(txn, bridge):
    """The bridge's ports except its own internal (local) port."""
    return [uuid for uuid in bridge["ports"] if txn.config["Port"][uuid]["name"] != bridge["name"]]


def cmd_list_ports(txn, args, opts):
    _, bridge = txn.bridge(args[0])
    return _names(txn.config, "Port", _user_ports(txn, bridge))


def cmd_list_ifaces(txn, args, opts):
    _, bridge = txn.bridge(args[0])
    ifaces = [iface for port in _user_ports(txn, bridge) for iface in txn.config["Port"][port]["interfaces"]]
    return _names(txn.config, "Interface", ifaces)


def cmd_port_to_br(txn, args, opts):
    # As in ovs-vsctl, a bridge's own local port is not a "port" here.
    if txn.find("Port", args[0])[1] is None or txn.find("Bridge", args[0])[1] is not None:
        raise CommandError(f"no port named {args[0]}")
    return txn.bridge_of_name("Port", args[0])


def cmd_iface_to_br(txn, args, opts):
    if txn.find("Interface", args[0])[1] is None or txn.find("Bridge", args[0])[1] is not None:
        raise CommandError(f"no interface named {args[0]}")
    return txn.bridge_of_name("Interface", args[0])


def _without_refs(table, row):
    return {name: value for name, value in row.items()
            if not isinstance(schema.TABLES[table][name].type, (schema.RefListType, schema.RefType))}


def _with_error(txn, iface):
    """The interface's `error` (why its netdev is not open), as ovs-vsctl show prints it."""
    column = getattr(txn.runtime, "netdev_column", None)
    error = column("Interface", "error", iface["name"]) if column else None
    return dict(iface, error=error) if error else iface


def cmd_show(txn, args, opts):
    config = txn.config
    bridges = []
    for bridge in sorted(config["Bridge"].values(), key=lambda row: row["name"]):
        ports = []
        for port in sorted((config["Port"][u] for u in bridge["ports"]), key=lambda row: row["name"]):
            ifaces = sorted((config["Interface"][u] for u in port["interfaces"]), key=lambda row: row["name"])
            ports.append(dict(_without_refs("Port", port),
                              interfaces=[_with_error(txn, _without_refs("Interface", i)) for i in ifaces]))
        bridges.append(dict(_without_refs("Bridge", bridge), ports=ports))
    return {"bridges": bridges, "version": __version__}


# ---------------------------------------------------------------- generic records

def _mutable_column(table, name):
    column = schema.column_named(table, name)
    if not column.mutable:
        raise CommandError(f"cannot modify read-only column {name} in table {table}")
    return column


def _split_column_key(text):
    """`col` -> (col, None); `col:key` -> (col, key) with a quoted key unquoted."""
    column, sep, key = text.partition(":")
    return column, (schema.unquote(key) if sep else None)


def _where(table, uuid, row):
    """How errors name a row: its name, or its table and uuid."""
    return row.get("name") or f"{table} {uuid}"


def _set_column(table, row, setting, txn, where=None):
    where = where or row.get("name")
    parts = schema.partition_unquoted(setting, "=")
    if parts is None:
        schema.column_named(table, _split_column_key(setting.strip())[0])   # an unknown column is named first
        raise CommandError(f'{setting}: argument does not end in "=" followed by a value.')
    name, key = _split_column_key(parts[0].strip())
    column = _mutable_column(table, name)
    if key is None:
        value = txn.resolve(column, column.parse(parts[1], where))
    elif isinstance(column.type, schema.MapType):
        value = dict(row[name], **{key: schema.unquote(parts[1])})
    elif isinstance(column.type, schema.RefMapType):      # flow_tables:0=@ft
        entry = column.type.parse_key(key, where, column.noun), column.type.parse_token(parts[1])
        value = txn.resolve(column, dict(row[name], **dict([entry])))
    else:
        raise CommandError(f"cannot specify key to set for non-map column {name}")
    column.check(value, where)
    row[name] = value


def cmd_set(txn, args, opts):
    table = schema.table_named(args[0])
    uuid, row = txn.record(table, args[1])
    for setting in args[2:]:
        _set_column(table, row, setting, txn, _where(table, uuid, row))
    return None


def cmd_create(txn, args, opts):
    """A new row -> its uuid.  A row of a non-root table lives only if the
    chain references it (`--id=@name`), as in OVSDB."""
    table = schema.table_named(args[0])
    if table in ("Bridge", "Port", "Interface", "SSL"):
        raise CommandError(f"create: rows of table {table} are made by add-br, add-port, add-bond "
                           "and set-ssl")
    uuid = txn.symbol(opts["--id"], define=True) if "--id" in opts else str(uuidlib.uuid4())
    row = schema.new_row(table)
    for setting in args[1:]:
        _set_column(table, row, setting, txn, _where(table, uuid, row))
    txn.config[table][uuid] = row
    return uuid


def _strong_referrers(txn, uuid):
    return [(table, name) for table, name, kind in schema.ref_columns() if not kind.weak
            for row in txn.config[table].values() if uuid in kind.refs(row[name])]


def cmd_destroy(txn, args, opts):
    """As ovs-vsctl destroy: a row something still references (a Bridge's
    mirror, and every Bridge, Port and Interface, which OVS's root row or a
    parent holds) stays; --all destroys every row of the table."""
    table = schema.table_named(args[0])
    if "--all" in opts:
        if len(args) > 1:
            raise CommandError("--all and records argument should not be specified together")
        uuids = list(txn.config[table])
    else:
        if len(args) < 2:
            raise CommandError("either --all or records argument should be specified")
        uuids = []
        for key in args[1:]:
            uuid, _ = txn.record(table, key, must_exist="--if-exists" not in opts)
            if uuid is not None:
                uuids.append(uuid)
    for uuid in uuids:
        if table in schema.NON_ROOT and not _strong_referrers(txn, uuid):
            txn.config[table].pop(uuid, None)
    return None


def _condition(txn, table, text):
    """`COLUMN[:KEY]=VALUE` or `COLUMN[:KEY]!=VALUE` -> test(uuid, row)."""
    negate = False
    parts = schema.partition_unquoted(text, "=")
    if parts is None:
        raise CommandError(f'{text}: argument does not end in "=" followed by a value.')
    left, right = parts
    if left.endswith("!"):
        left, negate = left[:-1], True
    elif left and left[-1] in "<>{}":
        raise CommandError(f"{text}: only = and != are supported")
    name, key = _split_column_key(left.strip())
    if name == "_uuid":
        wanted = right.strip().lower()
        return lambda uuid, row: (uuid == wanted) != negate
    column = schema.column_named(table, name)
    if key is not None:
        if not isinstance(column.type, schema.MapType):
            raise CommandError(f"cannot specify key to check for non-map column {name}")
        wanted = schema.unquote(right)
    else:
        wanted = txn.resolve(column, column.parse(right, text))

    def test(uuid, row):
        value = _column_value(txn, table, uuid, name, "find")
        if key is not None:
            value = (value or {}).get(key)
        return (value == wanted) != negate
    return test


def cmd_find(txn, args, opts):
    table = schema.table_named(args[0])
    tests = [_condition(txn, table, text) for text in args[1:]]
    uuids = [uuid for uuid in sorted(txn.config[table], key=lambda u: txn.config[table][u].get("name", u))
             if all(test(uuid, txn.config[table][uuid]) for test in tests)]
    return _records(txn, table, uuids, opts)


def _column_value(txn, table, uuid, name, command):
    """A stored column, a runtime column (asked of the runtime) or `_uuid`."""
    if name == "_uuid":
        return uuid
    column = schema.column_named(table, name)
    row = txn.config[table][uuid]
    if column.runtime is None:
        return row[name]
    if column.runtime_keyed:  # rows of tables without names (NetFlow, ...) by uuid
        value = txn.call_runtime(command, column.runtime, table, name, row.get("name", uuid))
    else:
        value = txn.call_runtime(command, column.runtime, row.get("name"))
    if value is None and isinstance(column.type, (schema.MapType, schema.SetType)):
        return column.type.empty()     # an unanswered map or set prints as {} or [], as in OVS
    return value


def cmd_get(txn, args, opts):
    table = schema.table_named(args[0])
    uuid, _ = txn.record(table, args[1])
    if "--id" in opts:
        name = opts["--id"]
        if name in txn.symbols and not txn.symbols[name][1]:
            raise CommandError(f'row id "{name}" specified on "get" command was used before it was defined')
        txn.symbol(name, define=True)
        txn.symbols[name][0] = uuid
    values = []
    for text in args[2:]:
        name, key = _split_column_key(text)
        value = _column_value(txn, table, uuid, name, "get")
        if key is not None:
            if not isinstance(value, dict):
                raise CommandError(f"cannot specify key to get for non-map column {name}")
            if key not in value:
                if "--if-exists" in opts:
                    continue
                raise CommandError(f'no key "{key}" in {table} record "{args[1]}" column {name}')
            value = value[key]
        values.append(value)
    return values


def cmd_list(txn, args, opts):
    """Records as {column: value}; all columns (runtime ones only when a
    runtime is there to ask) or those named by --columns."""
    table = schema.table_named(args[0])
    if len(args) > 1:
        uuids = [txn.record(table, key)[0] for key in args[1:]]
    else:
        uuids = sorted(txn.config[table], key=lambda u: txn.config[table][u].get("name", u))
    return _records(txn, table, uuids, opts)


def _records(txn, table, uuids, opts):
    if "--columns" in opts:
        names = schema.split_top(opts["--columns"])
    else:
        # Runtime columns only when the runtime can answer them.
        names = ["_uuid"] + [name for name, column in schema.TABLES[table].items()
                             if column.runtime is None or hasattr(txn.runtime, column.runtime)]
    return [{name: _column_value(txn, table, uuid, name, "list") for name in names} for uuid in uuids]


def cmd_clear(txn, args, opts):
    table = schema.table_named(args[0])
    uuid, row = txn.record(table, args[1])
    for name in args[2:]:
        column = _mutable_column(table, name)
        if not column.can_be_empty():
            raise CommandError(f'"clear" operation cannot be applied to column {name} of table {table}, '
                               "which is not allowed to be empty")
        column.check(column.type.empty(), _where(table, uuid, row))
        row[name] = column.type.empty()
    return None


def _change_members(txn, args, adding):
    """`add`/`remove` on a set, map or optional scalar column."""
    table = schema.table_named(args[0])
    uuid, row = txn.record(table, args[1])
    column = _mutable_column(table, args[2])
    where, current, kind = _where(table, uuid, row), row[args[2]], column.type
    for text in args[3:]:
        if isinstance(kind, schema.RefMapType):
            current = _change_map(current, text, adding, args[2],
                                  lambda key: kind.parse_key(key, where, column.noun),
                                  lambda key, ref: txn.resolve(column, {key: kind.parse_token(schema.unquote(ref))})[key])
        elif isinstance(kind, schema.RefType):
            values = set(kind.refs(txn.resolve(column, kind.parse(text, where, column.noun))))
            if kind.single:
                if adding and values and current is not None and values != {current}:
                    raise CommandError(f"\"add\" operation would put 2 values in column {args[2]} of table "
                                       f"{table} but the maximum number is 1")
                current = (next(iter(values)) if values else current) if adding else \
                    (None if current in values else current)
            else:
                current = sorted(set(current) | values) if adding else [v for v in current if v not in values]
        elif isinstance(kind, schema.MapType):
            current = _change_map(current, text, adding, args[2], schema.unquote,
                                  lambda key, value: schema.unquote(value))
        elif isinstance(kind, schema.SetType):
            values = set(kind.parse(text, where, column.noun))
            current = sorted(set(current) | values) if adding else [v for v in current if v not in values]
        elif not adding and current == kind.parse(text, where, column.noun):
            current = kind.empty()
        elif adding:
            raise CommandError(f"cannot add to column {args[2]} in table {table}: not a set or map")
    column.check(current, where)
    row[args[2]] = current
    return None


def _change_map(current, text, adding, name, parse_key, parse_value):
    """`add` KEY=VALUE entries to map column `name` (a key already there
    keeps its value, as OVSDB's map insert) or `remove` KEY or KEY=VALUE
    entries.  parse_key(text) and parse_value(key, text) give the stored
    forms (a string map's unquoted text; flow_tables' integer key and
    resolved reference)."""
    current = dict(current)
    for item in schema.split_top(schema.strip_brackets(text, "{", "}")):
        pair = schema.partition_unquoted(item, "=")
        if pair is None and adding:
            raise CommandError(f"{item}: add to map column {name} needs key=value")
        key = parse_key(pair[0] if pair else item)
        value = parse_value(key, pair[1]) if pair else None
        if adding:
            current.setdefault(key, value)
        elif key in current and (value is None or current[key] == value):
            del current[key]
    return current


def cmd_add(txn, args, opts):
    return _change_members(txn, args, adding=True)


def cmd_remove(txn, args, opts):
    return _change_members(txn, args, adding=False)


# ---------------------------------------------------------------- fail mode, controller

def cmd_set_fail_mode(txn, args, opts):
    _, bridge = txn.bridge(args[0])
    if args[1] not in ("standalone", "secure"):
        raise CommandError('fail-mode must be "standalone" or "secure"')
    bridge["fail_mode"] = args[1]
    return None


def cmd_get_fail_mode(txn, args, opts):
    return txn.bridge(args[0])[1]["fail_mode"]


def cmd_del_fail_mode(txn, args, opts):
    txn.bridge(args[0])[1]["fail_mode"] = None
    return None


def cmd_set_controller(txn, args, opts):
    _, bridge = txn.bridge(args[0])
    column = schema.TABLES["Bridge"]["controller"]
    targets = column.type.parse_elements(args[1:], bridge["name"], column.noun)
    column.check(targets, bridge["name"])
    bridge["controller"] = targets
    return None


def cmd_get_controller(txn, args, opts):
    return list(txn.bridge(args[0])[1]["controller"])


def cmd_del_controller(txn, args, opts):
    txn.bridge(args[0])[1]["controller"] = []
    return None


# ---------------------------------------------------------------- SSL

def cmd_set_ssl(txn, args, opts):
    """As ovs-vsctl set-ssl, except that nothing is stored that the switch
    could not use: each file must be readable PEM of its kind (absolute
    paths: the switch reads them, not vsctl), and the key must fit the
    certificate.  The one SSL row is replaced."""
    from vswitch.ofproto.conn import tls    # ssl only when asked for
    try:
        tls.check_files(*args)
    except tls.TLSConfigError as exc:
        raise CommandError(f"set-ssl: {exc}") from None
    txn.config["SSL"] = {}
    txn.insert("SSL", private_key=args[0], certificate=args[1], ca_cert=args[2], bootstrap_ca_cert=False)
    return None


def cmd_get_ssl(txn, args, opts):
    for row in txn.config["SSL"].values():
        return {key: row[key] for key in ("private_key", "certificate", "ca_cert", "bootstrap_ca_cert")}
    return None


def cmd_del_ssl(txn, args, opts):
    txn.config["SSL"] = {}
    return None


# ---------------------------------------------------------------- live state from the runtime

def cmd_fdb_show(txn, args, opts):
    txn.bridge(args[0])
    return txn.call_runtime("fdb-show", "fdb_show", args[0])


def cmd_fdb_flush(txn, args, opts):
    if args:
        txn.bridge(args[0])
    return txn.call_runtime("fdb-flush", "fdb_flush", args[0] if args else None)


def cmd_dump_ports(txn, args, opts):
    txn.bridge(args[0])
    if len(args) == 2:
        _, _, bridge = txn.port(args[1])
        if bridge["name"] != args[0]:
            raise CommandError(f"bridge {args[0]} does not have a port {args[1]}")
    ports = txn.call_runtime("dump-ports", "dump_ports", args[0])
    return [p for p in ports if len(args) == 1 or p.get("port") == args[1]]


def cmd_dump_dp_flows(txn, args, opts):
    return txn.call_runtime("dpctl-dump-flows", "dp_flows")


def _openflow(method, name, *fixed):
    """A vsctl OpenFlow command (ovs-ofctl syntax), run by the daemon's
    OpenFlow state: BR [ARG]; --strict where ovs-ofctl has it."""
    def handler(txn, args, opts):
        txn.bridge(args[0])
        extra = [True] if "--strict" in opts else []
        return txn.call_runtime(name, method, *args, *fixed, *extra)
    return handler


def cmd_add_flows(txn, args, opts):
    """add-flows BR TEXT: vsctl has already replaced the file name by its content."""
    txn.bridge(args[0])
    lines = [line for line in args[1].splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return txn.call_runtime("add-flows", "add_flows", args[0], lines)


def cmd_add_flow(txn, args, opts):
    txn.bridge(args[0])
    return txn.call_runtime("add-flow", "add_flows", args[0], [args[1]])


def cmd_del_flows(txn, args, opts):
    txn.bridge(args[0])
    return txn.call_runtime("del-flows", "del_flows", args[0], args[1] if len(args) > 1 else None,
                            "--strict" in opts)


cmd_dump_flows = _openflow("dump_flows", "dump-flows")


def _feature_show(feature):
    """lacp-show [BOND], bond-show [BOND], cfm-show [IFACE]: the runtime's
    `feature_show(feature, name or None)` -> a list of show dicts; an unknown
    name is the runtime's KeyError ("no such bond"), which becomes the error."""
    command = f"{feature}-show"

    def handler(txn, args, opts):
        return txn.call_runtime(command, "feature_show", feature, args[0] if args else None)
    return handler


def cmd_pmd_stats_show(txn, args, opts):
    return txn.call_runtime("pmd-stats-show", "pmd_stats")


def cmd_vlog_set(txn, args, opts):
    """The daemon's log levels (vswitch/vlog.py), not configuration: they
    change at once and do not survive a restart, as ovs-appctl vlog/set."""
    return txn.call_runtime("vlog-set", "vlog_set", list(args))


def cmd_vlog_list(txn, args, opts):
    return txn.call_runtime("vlog-list", "vlog_list")


# ---------------------------------------------------------------- the command table

MAY_EXIST = {"--may-exist": False}
IF_EXISTS = {"--if-exists": False}
COLUMNS = {"--columns": True}
STRICT = {"--strict": False}
_TABLE = [
    # name, min, max, options, handler, read_only, usage, help
    ("add-br", 1, 1, MAY_EXIST, cmd_add_br, False, "BR", "create a new bridge named BR"),
    ("del-br", 1, 1, IF_EXISTS, cmd_del_br, False, "BR", "delete BR and all of its ports"),
    ("list-br", 0, 0, {}, cmd_list_br, True, "", "print the names of all the bridges"),
    ("br-exists", 1, 1, {}, cmd_br_exists, True, "BR", "exit 2 if BR does not exist"),
    ("add-port", 2, None, MAY_EXIST, cmd_add_port, False, "BR PORT [COL[:KEY]=VALUE]...",
     "add new PORT to BR"),
    ("add-bond", 4, None, {**MAY_EXIST, "--fake-iface": False}, cmd_add_bond, False,
     "BR PORT IFACE... [COL[:KEY]=VALUE]...", "add bonded port PORT in BR from IFACES"),
    ("add-bond-iface", 2, 2, MAY_EXIST, cmd_add_bond_iface, False, "BOND IFACE", "add IFACE as a new bond interface"),
    ("del-bond-iface", 1, 2, IF_EXISTS, cmd_del_bond_iface, False, "[BOND] IFACE", "delete IFACE from its bond"),
    ("del-port", 1, 2, IF_EXISTS, cmd_del_port, False, "[BR] PORT", "delete PORT (which must be on BR)"),
    ("list-ports", 1, 1, {}, cmd_list_ports, True, "BR", "print the names of all the ports on BR"),
    ("list-ifaces", 1, 1, {}, cmd_list_ifaces, True, "BR", "print the names of all interfaces on BR"),
    ("port-to-br", 1, 1, {}, cmd_port_to_br, True, "PORT", "print name of bridge that contains PORT"),
    ("iface-to-br", 1, 1, {}, cmd_iface_to_br, True, "IFACE", "print name of bridge that contains IFACE"),
    ("show", 0, 0, {}, cmd_show, True, "", "print overview of the configuration"),
    ("set", 3, None, {}, cmd_set, False, "TBL REC COL[:KEY]=VALUE...", "set COLumn values in RECord"),
    ("get", 2, None, {**IF_EXISTS, "--id": True}, cmd_get, True, "TBL REC COL[:KEY]...", "print values of COLumns"),
    ("list", 1, None, COLUMNS, cmd_list, True, "TBL [REC...]", "list RECords (or all records) in TBL"),
    ("find", 1, None, COLUMNS, cmd_find, True, "TBL CONDITION...", "list records satisfying CONDITION"),
    ("create", 2, None, {"--id": True}, cmd_create, False, "TBL COL[:KEY]=VALUE...",
     "create and initialize a new record (--id=@NAME to refer to it)"),
    ("destroy", 1, None, {**IF_EXISTS, "--all": False}, cmd_destroy, False, "TBL REC...",
     "delete RECord (or --all records) from TBL"),
    ("clear", 3, None, {}, cmd_clear, False, "TBL REC COL...", "clear COLumn values to empty"),
    ("add", 4, None, {}, cmd_add, False, "TBL REC COL VALUE...", "add VALUEs (KEY=VALUE) to set/map COL"),
    ("remove", 4, None, {}, cmd_remove, False, "TBL REC COL VALUE|KEY...", "remove VALUEs or KEYs from COL"),
    ("set-fail-mode", 2, 2, {}, cmd_set_fail_mode, False, "BR standalone|secure", "set the fail-mode"),
    ("get-fail-mode", 1, 1, {}, cmd_get_fail_mode, True, "BR", "print the fail-mode"),
    ("del-fail-mode", 1, 1, {}, cmd_del_fail_mode, False, "BR", "delete the fail-mode"),
    ("set-controller", 2, None, {}, cmd_set_controller, False, "BR TARGET...", "set the controllers"),
    ("get-controller", 1, 1, {}, cmd_get_controller, True, "BR", "print the controllers"),
    ("del-controller", 1, 1, {}, cmd_del_controller, False, "BR", "delete the controllers"),
    ("set-ssl", 3, 3, {}, cmd_set_ssl, False, "PRIV-KEY CERT CA-CERT",
     "set the SSL configuration (absolute paths of PEM files)"),
    ("get-ssl", 0, 0, {}, cmd_get_ssl, True, "", "print the SSL configuration"),
    ("del-ssl", 0, 0, {}, cmd_del_ssl, False, "", "delete the SSL configuration"),
    ("fdb-show", 1, 1, {}, cmd_fdb_show, True, "BR", "print the MAC learning table of BR"),
    ("fdb-flush", 0, 1, {}, cmd_fdb_flush, True, "[BR]", "flush the MAC learning table(s)"),
    ("dump-ports", 1, 2, {}, cmd_dump_ports, True, "BR [PORT]", "print port counters"),
    ("dpctl-dump-flows", 0, 0, {}, cmd_dump_dp_flows, True, "", "print the datapath (megaflow) flows"),
    ("dump-dp-flows", 0, 0, {}, cmd_dump_dp_flows, True, "", "alias of dpctl-dump-flows"),
    ("dump-flows", 1, 2, {}, cmd_dump_flows, True, "BR [FLOW]", "print the OpenFlow flows of BR"),
    ("add-flow", 2, 2, {}, cmd_add_flow, True, "BR FLOW", "add an OpenFlow flow (ovs-ofctl syntax)"),
    ("add-flows", 2, 2, {}, cmd_add_flows, True, "BR FILE", "add the flows in FILE (- for stdin)"),
    ("mod-flows", 2, 2, STRICT, _openflow("mod_flows", "mod-flows"), True, "BR FLOW",
     "change the actions of matching flows"),
    ("del-flows", 1, 2, STRICT, cmd_del_flows, True, "BR [FLOW]", "delete matching (or all) flows"),
    ("dump-tables", 1, 1, {}, _openflow("dump_tables", "dump-tables"), True, "BR",
     "print OpenFlow table statistics"),
    ("add-group", 2, 2, {}, _openflow("add_group", "add-group"), True, "BR GROUP", "add an OpenFlow group"),
    ("dump-groups", 1, 1, {}, _openflow("dump_groups", "dump-groups"), True, "BR", "print the groups"),
    ("add-meter", 2, 2, {}, _openflow("add_meter", "add-meter"), True, "BR METER", "add an OpenFlow meter"),
    ("dump-meters", 1, 1, {}, _openflow("dump_meters", "dump-meters"), True, "BR", "print the meters"),
    ("trace", 2, 2, {}, _openflow("trace", "trace"), True, "BR FLOW",
     "explain how BR handles a packet of FLOW"),
    ("pmd-stats-show", 0, 0, {}, cmd_pmd_stats_show, True, "", "print fast path thread statistics"),
    ("lacp-show", 0, 1, {}, _feature_show("lacp"), True, "[BOND]",
     "print LACP state (as ovs-appctl lacp/show)"),
    ("bond-show", 0, 1, {}, _feature_show("bond"), True, "[BOND]",
     "print bond state (as ovs-appctl bond/show)"),
    ("cfm-show", 0, 1, {}, _feature_show("cfm"), True, "[IFACE]",
     "print CFM state (as ovs-appctl cfm/show)"),
    ("vlog-set", 0, None, {}, cmd_vlog_set, True, "[MODULE:]LEVEL...",
     "set log levels (as ovs-appctl vlog/set; ANY for all modules)"),
    ("vlog-list", 0, 0, {}, cmd_vlog_list, True, "", "print log levels (as ovs-appctl vlog/list)"),
]
COMMANDS = {entry[0]: Command(*entry) for entry in _TABLE}


def usage():
    """--help text for the commands, generated from the command table."""
    return "\n".join(f"  {(c.name + ' ' + c.usage).strip():<46} {c.help}" for c in COMMANDS.values())


# ---------------------------------------------------------------- parsing and running

def split_command(argv):
    """["--may-exist", "add-br", "br0"] -> (["--may-exist"], "add-br", ["br0"])."""
    argv = list(argv)
    n = 0
    while n < len(argv) and argv[n].startswith("-"):
        n += 1
    name = argv[n] if n < len(argv) else None
    return argv[:n], name, argv[n + 1:]


def _count(n):
    return f"{n} argument{'' if n == 1 else 's'}"


def parse_command(argv):
    """Check one command's name, options and argument count -> (Command, args, opts)."""
    raw_options, name, args = split_command(argv)
    if name is None:
        raise CommandError("missing command name (see vsctl --help)")
    command = COMMANDS.get(name)
    if command is None:
        raise CommandError(f"unknown command '{name}'; see vsctl --help")
    opts = {}
    for raw in raw_options:
        option, has_value, value = raw.partition("=")
        if option not in command.options:
            raise CommandError(f"'{name}' command has no '{option}' option")
        if command.options[option] != bool(has_value):
            need = "requires a value" if command.options[option] else "takes no value"
            raise CommandError(f"'{option}' option of '{name}' {need}")
        opts[option] = value if has_value else True
    if len(args) < command.min_args:
        raise CommandError(f"'{name}' command requires at least {_count(command.min_args)}")
    if command.max_args is not None and len(args) > command.max_args:
        raise CommandError(f"'{name}' command takes at most {_count(command.max_args)}")
    return command, args, opts


def execute(config, commands, runtime=None):
    """Run a command chain on a copy of `config` -> (new_config, outputs)."""
    if not isinstance(commands, list) or not all(
            isinstance(argv, list) and all(isinstance(arg, str) for arg in argv) for argv in commands):
        raise CommandError("commands must be a list of argument lists (strings)")
    parsed = [parse_command(argv) for argv in commands]
    txn = Txn(copy.deepcopy(config), runtime)
    outputs = []
    try:
        for command, args, opts in parsed:
            outputs.append(command.handler(txn, args, opts))
        for name, (_, created) in txn.symbols.items():
            if not created:
                raise CommandError(f'row id "{name}" is referenced but never created '
                                   f'(e.g. with "-- --id={name} create ...")')
        if not all(command.read_only for command, _, _ in parsed):
            schema.collect_garbage(txn.config)
            schema.validate_config(txn.config)
    except SchemaError as exc:
        raise CommandError(str(exc)) from None
    return txn.config, outputs
