"""The Open_vSwitch database as OVSDB clients see it, made from (and turned
back into) the daemon's configuration dict.

Schema: OVS's own (ovs_schema.py) with every table and column, so each OVS
client's IDL finds what it registers; plus vswitch's read-only `statistics`
on NetFlow, sFlow and IPFIX.  Each column has a *kind*:

  stored       a column of vswitch/config/schema.py: read and written
  runtime      live state of the switch (Interface ofport, status, ...):
               read-only, asked of the daemon's runtime object
  fixed        a value the switch states (Open_vSwitch ovs_version,
               Bridge datapath_type "netdev", ...): read-only
  unsupported  not implemented: always its default value; a write of any
               other value is refused ("constraint violation" naming it)

Tables without a config counterpart (QoS, Manager, ...) are always empty
and refuse inserts.

The rows that are not in vswitch's config:
- Open_vSwitch: one row.  Its uuid, next_cfg and external_ids are kept in
  the config dict under the key "Open_vSwitch" (invisible to vsctl, stored by
  the same SQLite commit); `bridges` is every Bridge row and `ssl` the SSL
  row, so vsctl's add-br and OVSDB's insert + mutate of `bridges` give the
  same result, and a Bridge that `bridges` stops naming is garbage collected
  (Bridge is a non-root table, as in OVS).  `cur_cfg` is the next_cfg of the
  configuration the switch last applied (the daemon's, not stored).
- Controller: vswitch keeps a bridge's controllers as a set of target
  strings; each (bridge, target) is shown as a Controller row whose uuid is
  remembered in the hidden row (or derived from the pair), and writes of
  Controller rows become the Bridge's targets.
"""
import json
import uuid as uuidlib

from vswitch import __version__
from vswitch.config import schema as cfg
from vswitch.ovsdb.ovs_schema import SCHEMA_JSON
from vswitch.ovsdb.types import Type, constraint, datum_text

DB_NAME = "Open_vSwitch"
ROOT = "Open_vSwitch"               # the table, and the hidden config key of its row
CONFIG_TABLES = ("Bridge", "Port", "Interface", "Mirror", "NetFlow", "sFlow", "IPFIX", "SSL", "Flow_Table")
CONTROLLER_NS = uuidlib.UUID("5b0c8a0e-3d4f-4c1e-9a63-7d2f3b9c1e07")
STATS_TYPE = {"key": "string", "value": "integer", "min": 0, "max": "unlimited"}


def _schema_json():
    schema = json.loads(SCHEMA_JSON)
    schema.pop("cksum", None)       # no longer OVS's exact text
    for table in ("NetFlow", "sFlow", "IPFIX"):
        schema["tables"][table]["columns"]["statistics"] = {"type": STATS_TYPE, "ephemeral": True}
    return schema


SCHEMA = _schema_json()
SCHEMA_VERSION = SCHEMA["version"]


class ColumnInfo:
    __slots__ = ("name", "type", "mutable", "kind", "runtime", "accepts", "config")

    def __init__(self, name, js):
        self.name = name
        self.type = Type.from_json(js["type"])
        self.mutable = js.get("mutable", True)
        self.kind = "unsupported"
        self.runtime = None         # (method, keyed) for runtime columns
        self.accepts = ()           # other datums a write may give (fixed columns)
        self.config = None          # the vswitch config Column of a stored one

    @property
    def writable(self):
        return self.kind == "stored"


class TableInfo:
    def __init__(self, name, js):
        self.name = name
        self.columns = {col: ColumnInfo(col, cjs) for col, cjs in js["columns"].items()}
        self.is_root = js.get("isRoot", False)
        self.max_rows = js.get("maxRows")
        self.indexes = js.get("indexes", [])
        self.implemented = name in CONFIG_TABLES or name in (ROOT, "Controller")
        self.defaults = {col: info.type.default() for col, info in self.columns.items()}
        self.row_defaults = None    # the same without runtime columns (set by _classify)


def _fixed(info, accepts=()):
    info.kind, info.accepts = "fixed", tuple(accepts)


def _classify(tables):
    for table in CONFIG_TABLES:
        for name, column in cfg.TABLES[table].items():
            info = tables[table].columns[name]
            if column.runtime is None:
                info.kind, info.config = "stored", column
            else:
                info.kind, info.runtime = "runtime", (column.runtime, column.runtime_keyed)
    root = tables[ROOT].columns
    for name in ("bridges", "ssl", "next_cfg", "external_ids"):
        root[name].kind = "stored"
    for name in ("cur_cfg", "ovs_version", "db_version", "datapath_types", "iface_types"):
        root[name].kind = "fixed"
    bridge = tables["Bridge"].columns
    bridge["controller"].kind = "stored"
    # A userspace switch: what OVS calls the netdev datapath ("" is OVS's default).
    _fixed(bridge["datapath_type"], accepts=[("",)])
    bridge["datapath_id"].kind, bridge["datapath_id"].runtime = "runtime", ("bridge_datapath_id", False)
    tables["Controller"].columns["target"].kind = "stored"
    for table in tables.values():
        table.row_defaults = {name: value for name, value in table.defaults.items()
                              if table.columns[name].kind != "runtime"}


TABLES = {name: TableInfo(name, js) for name, js in SCHEMA["tables"].items()}
_classify(TABLES)

FIXED = {
    ("Open_vSwitch", "ovs_version"): (__version__,),
    ("Open_vSwitch", "db_version"): (SCHEMA_VERSION,),
    ("Open_vSwitch", "datapath_types"): ("netdev",),
    ("Open_vSwitch", "iface_types"): tuple(sorted(t for t in cfg.INTERFACE_TYPES if t)),
    ("Bridge", "datapath_type"): ("netdev",),
}


# ---------------------------------------------------------------- values

def to_datum(value):
    """A config value (None, scalar, list, dict) -> canonical datum."""
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(sorted(set(value)))
    return (value,)


def column_datum(column, value):
    """A config Column's value -> canonical datum (a reference map's keys
    are decimal text in the config, integers in OVSDB)."""
    if value is not None and isinstance(column.type, cfg.RefMapType):
        return tuple(sorted((int(key), ref) for key, ref in value.items()))
    return to_datum(value)


def from_datum(column, datum):
    """A datum -> the value a config Column holds."""
    kind = column.type
    if isinstance(kind, cfg.RefMapType):
        return {str(key): ref for key, ref in datum}
    if isinstance(kind, cfg.MapType):
        return dict(datum)
    if isinstance(kind, (cfg.SetType, cfg.RefListType)):
        return list(datum)
    if isinstance(kind, cfg.RefType):
        return (datum[0] if datum else None) if kind.single else list(datum)
    if datum:
        return datum[0]
    return None if getattr(kind, "optional", False) else kind.empty()


def value_text(info, datum):
    return datum_text(info.type, datum)


# ---------------------------------------------------------------- the hidden root row

def root_row(config):
    """(uuid, hidden row) of the Open_vSwitch row kept in the config."""
    rows = config.get(ROOT) or {}
    for uuid, row in rows.items():
        return uuid, row
    return None, None


def ensure_root(config):
    """A config with its Open_vSwitch row (a new uuid the first time)."""
    if root_row(config)[0] is not None:
        return config
    return dict(config, **{ROOT: {str(uuidlib.uuid4()): {"next_cfg": 0, "external_ids": {}, "controllers": {}}}})


def next_cfg(config):
    row = root_row(config)[1]
    return row.get("next_cfg", 0) if row else 0


def controller_uuid(hidden, bridge_uuid, target):
    known = (hidden.get("controllers") or {}).get(bridge_uuid, {})
    return known.get(target) or str(uuidlib.uuid5(CONTROLLER_NS, f"{bridge_uuid} {target}"))


# ---------------------------------------------------------------- config -> view

def config_to_view(config, cur_cfg):
    """{table: {uuid: row}} with every column but the runtime ones (those
    are asked for when read: see Database.value)."""
    view = {name: {} for name in TABLES}
    root_uuid, hidden = root_row(config)
    for table in CONFIG_TABLES:
        info = TABLES[table]
        stored = [(name, col.config) for name, col in info.columns.items() if col.kind == "stored" and col.config]
        fixed = {name: FIXED[(table, name)] for name, col in info.columns.items()
                 if col.kind == "fixed" and (table, name) in FIXED}
        rows = view[table]
        for uuid, row in config.get(table, {}).items():
            vrow = dict(info.row_defaults)
            for name, column in stored:
                value = row.get(name)
                if value is not None or name in row:
                    vrow[name] = column_datum(column, value)
            vrow.update(fixed)
            rows[uuid] = vrow
    controllers = view["Controller"]
    cdefaults = TABLES["Controller"].row_defaults
    for bridge_uuid, bridge in config.get("Bridge", {}).items():
        refs = []
        for target in bridge.get("controller") or []:
            cuuid = controller_uuid(hidden or {}, bridge_uuid, target)
            controllers[cuuid] = dict(cdefaults, target=(target,))
            refs.append(cuuid)
        view["Bridge"][bridge_uuid]["controller"] = tuple(sorted(set(refs)))
    if root_uuid is not None:
        ovs = dict(TABLES[ROOT].row_defaults)
        ovs.update({name: value for (table, name), value in FIXED.items() if table == ROOT})
        ovs["bridges"] = tuple(sorted(config.get("Bridge", {})))
        ovs["ssl"] = tuple(sorted(config.get("SSL", {})))[:1]
        ovs["next_cfg"] = (hidden.get("next_cfg", 0),)
        ovs["cur_cfg"] = (cur_cfg,)
        ovs["external_ids"] = to_datum(hidden.get("external_ids") or {})
        view[ROOT][root_uuid] = ovs
    return view


# ---------------------------------------------------------------- view -> config

def view_to_config(view, old_config):
    """The config a transaction's final view stands for; raises OvsdbError
    ("constraint violation") for what vswitch's own checks refuse."""
    roots = view[ROOT]
    if len(roots) != 1:
        raise constraint("the Open_vSwitch table must keep exactly one row (vswitch is configured "
                         "through it)")
    (root_uuid, ovs), = roots.items()
    _, old_hidden = root_row(old_config)
    config = {key: value for key, value in old_config.items() if key not in CONFIG_TABLES and key != ROOT}
    for table in CONFIG_TABLES:
        old_rows = old_config.get(table, {})
        columns = [(name, col.config) for name, col in TABLES[table].columns.items()
                   if col.kind == "stored" and col.config]
        rows = config[table] = {}
        for uuid, vrow in view[table].items():
            row = {name: from_datum(column, vrow[name]) for name, column in columns}
            old = old_rows.get(uuid)
            for name, column in columns:
                if isinstance(column.type, cfg.RefListType) and old is not None:
                    row[name] = _keep_order(old.get(name) or [], row[name])
            rows[uuid] = row
    controllers = {}
    for bridge_uuid, vrow in view["Bridge"].items():
        targets = {}
        for cuuid in vrow["controller"]:
            target = view["Controller"][cuuid]["target"][0]
            if target in targets:
                raise constraint(f"Bridge {vrow['name'][0]}: two Controller rows have the target {target}")
            targets[target] = cuuid
        config["Bridge"][bridge_uuid]["controller"] = sorted(targets)
        if targets:
            controllers[bridge_uuid] = targets
    config[ROOT] = {root_uuid: {"next_cfg": ovs["next_cfg"][0], "external_ids": dict(ovs["external_ids"]),
                                "controllers": controllers}}
    try:
        cfg.validate_config(config)
    except cfg.SchemaError as exc:
        raise constraint(str(exc)) from None
    _check_ssl(config, old_config, old_hidden)
    return config


def _keep_order(old, new):
    """`new`'s members, those already in `old` in their old order first."""
    members = set(new)
    kept = [u for u in old if u in members]
    return kept + sorted(members - set(kept))


def _check_ssl(config, old_config, old_hidden):
    """An SSL row that is new or changed must name usable PEM files, as
    vsctl set-ssl requires (the switch reads them at its next change)."""
    old = list((old_config.get("SSL") or {}).values())
    for row in config.get("SSL", {}).values():
        if row in old:
            continue
        if row.get("bootstrap_ca_cert"):
            raise constraint("SSL column bootstrap_ca_cert: vswitch does not bootstrap CA certificates "
                             "(only false is accepted)")
        from vswitch.ofproto.conn import tls     # ssl only when asked for
        try:
            tls.check_files(row["private_key"], row["certificate"], row["ca_cert"])
        except tls.TLSConfigError as exc:
            raise constraint(f"SSL: {exc}") from None
