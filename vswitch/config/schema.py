"""Tables and columns of the configuration, their types and validation.

Values follow OVSDB's model: scalars (optional ones are None when unset),
sets (lists), string->string maps and references (lists of row uuids). Each
column type knows three things: how to parse the ovs-vsctl text syntax
(`tag=10`, `trunks=[10,20]`, `options={a=b}`, `"quoted"`), how to check a
value, and what its empty value is (for `clear`). Error messages start with
the record name and say what was wrong and what is allowed.

Runtime columns (Interface status/statistics/ofport, the CFM and LACP
status columns) are declared here too, read-only, with the name of the
`runtime` method that supplies them; they are never stored. A plain runtime
column's method is called with the row name (`interface_ofport("p1")`); a
`runtime_keyed` one's with (table, column, row name) (`feature_column(
"Interface", "cfm_fault", "p1")`), so one method serves a family of columns.
A runtime answer of None is the empty value (`[]`, as ovs-vsctl prints it).

Some checks involve two columns of a row (a non-extended `cfm_mpid` must be
1..8191, as OVS's cfm.c requires): `ROW_CHECKS` run on whole rows when the
configuration is validated at the end of each command chain.
"""
import ipaddress
import json
import re

from vswitch.datapath import port_types


class SchemaError(ValueError):
    """A value, table or column that the schema does not allow."""


# ---------------------------------------------------------------- text syntax

def split_top(text, sep=","):
    """Split at `sep` outside double quotes; strip blanks; drop empty items."""
    items, current, quoted, escaped = [], [], False, False
    for ch in text:
        if quoted:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            current.append(ch)
        elif ch == sep:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    return [item for item in items if item]


def unquote(text):
    """`"a b"` -> `a b` (JSON string escapes); bare words are kept as they are."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError as exc:
            raise SchemaError(f"invalid quoted string {text}: {exc}") from None
    return text


def partition_unquoted(text, sep):
    """Split at the first `sep` outside double quotes -> (left, right) or None."""
    quoted = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            return text[:i], text[i + 1:]
    return None


def split_key_value(text):
    """`key=value` (either side may be quoted) -> (key, value)."""
    parts = partition_unquoted(text, "=")
    if parts is None:
        raise SchemaError(f"{text!r}: expected key=value")
    return unquote(parts[0]), unquote(parts[1])


def strip_brackets(text, open_, close):
    text = text.strip()
    if text.startswith(open_):
        if not text.endswith(close):
            raise SchemaError(f"{text!r}: missing '{close}'")
        return text[1:-1]
    return text


# ---------------------------------------------------------------- value types

class StringType:
    """A string, optionally restricted to `choices` or checked by `check`."""

    def __init__(self, choices=None, optional=False, check=None, expect=None):
        self.choices, self.optional = choices, optional
        self.check_fn, self.expect = check, expect

    def empty(self):
        return None if self.optional else ""

    def parse(self, text, where, noun):
        if self.optional and text.strip() == "[]":
            return None
        return unquote(text)

    def check(self, value, where, noun):
        if value is None and self.optional:
            return
        if not isinstance(value, str):
            raise SchemaError(f"{where}: invalid {noun} {value!r} (must be a string)")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(json.dumps(c) for c in self.choices)
            raise SchemaError(f"{where}: invalid {noun} {json.dumps(value)} (must be one of: {allowed})")
        if self.check_fn is not None and not self.check_fn(value):
            raise SchemaError(f"{where}: invalid {noun} {json.dumps(value)} (must be {self.expect})")


class IntType:
    """An integer in lo..hi; None when optional and unset, `default` (the
    value of a new row) when not optional."""

    def __init__(self, lo, hi, optional=True, default=0):
        self.lo, self.hi, self.optional, self.default = lo, hi, optional, default

    def empty(self):
        return None if self.optional else self.default

    def parse(self, text, where, noun):
        text = unquote(text)
        if self.optional and text == "[]":
            return None
        try:
            return int(text, 10)
        except ValueError:
            raise SchemaError(f"{where}: invalid {noun} {text!r} (must be {self.lo}..{self.hi})") from None

    def check(self, value, where, noun):
        if value is None and self.optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
            raise SchemaError(f"{where}: invalid {noun} {value!r} (must be {self.lo}..{self.hi})")


class BoolType:
    optional = False

    def empty(self):
        return False

    def parse(self, text, where, noun):
        text = unquote(text)
        if text not in ("true", "false"):
            raise SchemaError(f"{where}: invalid {noun} {text!r} (must be true or false)")
        return text == "true"

    def check(self, value, where, noun):
        if not isinstance(value, bool):
            raise SchemaError(f"{where}: invalid {noun} {value!r} (must be true or false)")


class SetType:
    """A set of atoms of `element` type, stored as a sorted list (as OVSDB does);
    `min` values at least (OVS's NetFlow/sFlow targets need one)."""

    def __init__(self, element, min=0):
        self.element, self.min = element, min
        self.optional = min == 0

    def empty(self):
        return []

    def parse(self, text, where, noun):
        items = split_top(strip_brackets(text, "[", "]"))
        return self.parse_elements(items, where, noun)

    def parse_elements(self, texts, where, noun):
        return sorted({self.element.parse(text, where, noun) for text in texts})

    def check(self, value, where, noun):
        if not isinstance(value, list):
            raise SchemaError(f"{where}: invalid {noun} {value!r} (must be a list)")
        for item in value:
            if item is None:
                raise SchemaError(f"{where}: invalid {noun} null")
            self.element.check(item, where, noun)
        if len(value) < self.min:
            raise SchemaError(f"{where}: at least {self.min} {noun} required")


class MapType:
    """string->string map; `keys` names validators for well-known keys.
    A `strict` map (other_config) refuses every key not in `keys`: the
    switch would store it and never act on it."""

    def __init__(self, keys=None, strict=False):
        self.keys, self.strict = keys or {}, strict

    def empty(self):
        return {}

    def parse(self, text, where, noun):
        items = split_top(strip_brackets(text, "{", "}"))
        return dict(split_key_value(item) for item in items)

    def check(self, value, where, noun):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: invalid {noun} {value!r} (must be a map)")
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                raise SchemaError(f"{where}: invalid {noun}:{key} {item!r} (map values are strings)")
            if key in self.keys:
                check, expect = self.keys[key]
                if not check(item):
                    raise SchemaError(f"{where}: invalid {noun}:{key} {json.dumps(item)} (must be {expect})")
            elif self.strict:
                known = ", ".join(sorted(self.keys))
                raise SchemaError(f"{where}: unknown key {noun}:{key} (this switch uses only: {known})")


class RefListType:
    """Uuids of rows in `table`; changed only by add-br/add-port/del-* commands."""

    def __init__(self, table):
        self.table = table

    def empty(self):
        return []

    def parse(self, text, where, noun):
        raise SchemaError(f"{where}: column {noun} is managed by add-br/add-port/del-port commands")

    def check(self, value, where, noun):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SchemaError(f"{where}: invalid {noun} {value!r} (must be a list of uuids)")


UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class RefType:
    """A reference column that commands may change (OVSDB's uuid with a
    refTable): a set of row uuids (a sorted list), or with `single` an
    optional one (a uuid string or None).  The text is a uuid or an `@name`
    that the command chain defined with --id (resolved by the command
    engine, `Txn.resolve`).  `weak` references (Mirror -> Port) are dropped
    when their row goes; strong ones keep a non-root row alive."""

    def __init__(self, table, single=False, weak=False):
        self.table, self.single, self.weak = table, single, weak
        self.optional = True

    def empty(self):
        return None if self.single else []

    @staticmethod
    def parse_token(text):
        token = unquote(text)
        if token.startswith("@") or UUID_RE.fullmatch(token):
            return token if token.startswith("@") else token.lower()
        raise SchemaError(f'"{token}" is not a valid UUID')

    def parse(self, text, where, noun):
        if self.single:
            inner = strip_brackets(text, "[", "]").strip()
            return self.parse_token(inner) if inner else None
        return self.parse_elements(split_top(strip_brackets(text, "[", "]")), where, noun)

    def parse_elements(self, texts, where, noun):
        return sorted({self.parse_token(text) for text in texts})

    def refs(self, value):
        """The uuids a stored value holds, as a list."""
        if self.single:
            return [] if value is None else [value]
        return list(value)

    def check(self, value, where, noun):
        if self.single:
            if value is not None and not isinstance(value, str):
                raise SchemaError(f"{where}: invalid {noun} {value!r} (must be a uuid or empty)")
        elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SchemaError(f"{where}: invalid {noun} {value!r} (must be a list of uuids)")


class RefMapType(RefType):
    """OVSDB's map of integers `lo`..`hi` to strong references of `table`
    (Bridge flow_tables: OpenFlow table id -> Flow_Table).  Stored as a dict
    whose keys are the integers in decimal (the config is JSON, whose keys
    are strings); the text is `{0=@ft, 1=UUID}`, one entry `COL:KEY=@ft`.
    A RefType, so referential checks and garbage collection (ref_columns)
    see its values."""

    def __init__(self, table, lo, hi):
        super().__init__(table)
        self.lo, self.hi = lo, hi

    def empty(self):
        return {}

    def parse_key(self, text, where, noun):
        """A map key -> its canonical decimal text, or a SchemaError naming it."""
        text = unquote(text).strip()
        if not re.fullmatch(r"-?[0-9]+", text) or not self.lo <= int(text) <= self.hi:
            raise SchemaError(f"{where}: invalid {noun} key {text!r} (must be an integer {self.lo}..{self.hi})")
        return str(int(text))

    def parse(self, text, where, noun):
        items = split_top(strip_brackets(text, "{", "}"))
        return dict(self.parse_entry(item, where, noun) for item in items)

    def parse_entry(self, item, where, noun):
        key, value = split_key_value(item)
        return self.parse_key(key, where, noun), self.parse_token(value)

    def refs(self, value):
        return list(value.values())

    def check(self, value, where, noun):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise SchemaError(f"{where}: invalid {noun} {value!r} (must be a map of integers to uuids)")
        for key in value:
            self.parse_key(str(key), where, noun)


class UnsupportedSetType(SetType):
    """An OVS set column the switch does not act on (Flow_Table groups and
    prefixes): listed with its empty value, any other value refused naming
    the column, since it would be stored and never used."""

    def __init__(self):
        super().__init__(StringType())

    def parse(self, text, where, noun):
        value = super().parse(text, where, noun)
        self.check(value, where, noun)
        return value

    def check(self, value, where, noun):
        if value != []:
            raise SchemaError(f"{where}: column {noun} is not supported by this switch (only [] is accepted)")


# ---------------------------------------------------------------- checkers

def is_positive_int(text):
    return text.isdigit() and int(text) > 0


def is_mac(text):
    return re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text) is not None


def _is_ip(text):
    try:
        ipaddress.ip_address(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
        return True
    except ValueError:
        return False


def _is_port(text):
    return text.isdigit() and 0 < int(text) < 65536


def _split_ip_port(rest):
    """`1.2.3.4:6653`, `[::1]:6653`, `1.2.3.4`, `::1` -> (ip, port or None)."""
    if rest.startswith("["):
        ip, _, tail = rest.partition("]")
        return ip + "]", (tail[1:] if tail.startswith(":") else tail or None)
    if rest.count(":") == 1:
        ip, _, port = rest.partition(":")
        return ip, port
    return rest, None


def is_controller_target(target):
    """tcp:IP[:PORT], ssl:IP[:PORT], ptcp:[PORT][:IP], pssl:[PORT][:IP], unix:PATH, punix:PATH."""
    method, sep, rest = target.partition(":")
    if not sep:
        return False
    if method in ("unix", "punix"):
        return rest != ""
    if method in ("tcp", "ssl"):
        ip, port = _split_ip_port(rest)
        return _is_ip(ip) and (port is None or _is_port(port))
    if method in ("ptcp", "pssl"):
        port, _, ip = rest.partition(":")
        return (port == "" or _is_port(port)) and (ip == "" or _is_ip(ip))
    return False


def is_ip_port(target):
    """IP:PORT or [IPv6]:PORT, the collector targets of NetFlow, sFlow and IPFIX."""
    ip, port = _split_ip_port(target)
    return port is not None and _is_ip(ip) and _is_port(port)


IP_PORT = "IP:PORT, e.g. 192.0.2.1:2055 or [2001:db8::1]:2055"

CONTROLLER_SYNTAX = ("tcp:IP[:PORT], ssl:IP[:PORT], ptcp:[PORT][:IP], pssl:[PORT][:IP], "
                     "unix:PATH or punix:PATH")


# ---------------------------------------------------------------- tables

def int_text(lo, hi=None):
    """A checker for a map value holding a decimal integer in lo..hi."""
    def check(text):
        return re.fullmatch(r"-?[0-9]+", text) is not None and lo <= int(text) and (hi is None or int(text) <= hi)
    return check


def one_of(*words):
    return lambda text: text in words


def _range(lo, hi=None):
    return f"an integer {lo}..{hi}" if hi is not None else f"an integer >= {lo}"


INT64_MAX = 2 ** 63 - 1
INT32_MAX = 2 ** 31 - 1


class Column:
    def __init__(self, name, type_, mutable=True, runtime=None, noun=None, runtime_keyed=False):
        self.name, self.type = name, type_
        self.mutable = mutable and runtime is None
        self.runtime = runtime          # name of the runtime method, or None
        self.runtime_keyed = runtime_keyed  # method takes (table, column, name), not (name)
        self.noun = noun or name        # how error messages call a value of it

    def can_be_empty(self):
        """Whether `clear` may empty it (OVSDB: a column with min 0)."""
        return getattr(self.type, "optional", True)

    def check(self, value, where):
        self.type.check(value, where, self.noun)

    def parse(self, text, where):
        return self.type.parse(text, where, self.noun)


def _columns(*columns):
    return {column.name: column for column in columns}


IFNAMSIZ = 16  # Linux: a netdev name is at most 15 bytes and a NUL
PORT_NAME_MAX = 255  # a Port need not be a netdev (bonds), but its name is bounded too


def is_netdev_name(text):
    """Linux's dev_valid_name(): 1..15 bytes, not "." or "..", no "/", ":" or
    whitespace.  Bridge and interface names become netdevs and file names
    (RUNDIR/BR.mgmt), so they are checked before they reach C or the disk."""
    return (0 < len(text.encode()) < IFNAMSIZ and text not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in text))


def is_port_name(text):
    return (0 < len(text.encode()) <= PORT_NAME_MAX and text not in (".", "..")
            and not any(c == "/" or c.isspace() for c in text))


NETDEV_NAME = "1 to 15 bytes without '/', ':' or white space, and not '.' or '..'"


def _common(*columns, name_check=is_netdev_name, name_rule=NETDEV_NAME):
    # other_config keys are the ones the switch reads (MAP_KEYS); external_ids
    # is the free-form map of OVS, for the integrators' own use.
    name = StringType(check=name_check, expect=name_rule)
    return _columns(Column("name", name, mutable=False), *columns,
                    Column("other_config", MapType(strict=True)), Column("external_ids", MapType()))


VLAN = (0, 4095)
# The types the datapath opens: the port-type registry's
# (vswitch/datapath/port_types.py); other OVS types (gre, geneve, patch...)
# would be stored and never opened, so they are refused.
INTERFACE_TYPES = port_types.schema_types()
# The versions the OpenFlow codec speaks (ofproto/ofp, OFSwitch.versions()).
OPENFLOW_VERSIONS = ["OpenFlow10", "OpenFlow13"]
# The switch's OpenFlow tables are 0..253 (ofproto/flow_table.py
# DEFAULT_N_TABLES; a unit test keeps the two equal): OVS's schema allows
# flow_tables keys up to 254, a table this switch does not have.
OPENFLOW_TABLES = 254

TABLES = {
    "Bridge": _common(
        Column("ports", RefListType("Port"), mutable=False),
        Column("fail_mode", StringType(["standalone", "secure"], optional=True)),
        Column("protocols", SetType(StringType(OPENFLOW_VERSIONS)), noun="protocol"),
        Column("controller", SetType(StringType(check=is_controller_target, expect=CONTROLLER_SYNTAX)),
               noun="controller target"),
        Column("mirrors", RefType("Mirror")),
        Column("netflow", RefType("NetFlow", single=True)),
        Column("sflow", RefType("sFlow", single=True)),
        Column("ipfix", RefType("IPFIX", single=True)),
        Column("flood_vlans", SetType(IntType(*VLAN, optional=False)), noun="flood VLAN"),
        Column("flow_tables", RefMapType("Flow_Table", 0, OPENFLOW_TABLES - 1)),
    ),
    "Port": _common(
        Column("interfaces", RefListType("Interface"), mutable=False),
        Column("tag", IntType(*VLAN), noun="VLAN tag"),
        Column("trunks", SetType(IntType(*VLAN, optional=False)), noun="trunk VLAN"),
        Column("vlan_mode", StringType(["access", "trunk", "native-tagged", "native-untagged"],
                                       optional=True)),
        Column("bond_mode", StringType(["active-backup", "balance-slb", "balance-tcp"], optional=True)),
        Column("lacp", StringType(["active", "passive", "off"], optional=True)),
        Column("bond_updelay", IntType(0, INT32_MAX, optional=False), noun="bond_updelay (ms)"),
        Column("bond_downdelay", IntType(0, INT32_MAX, optional=False), noun="bond_downdelay (ms)"),
        Column("bond_fake_iface", BoolType()),
        name_check=is_port_name, name_rule="1 to 255 bytes without '/' or white space, and not '.' or '..'",
    ),
    "Interface": _common(
        Column("type", StringType(INTERFACE_TYPES)),
        Column("options", MapType()),
        Column("ofport_request", IntType(1, 65279)),
        Column("mac", StringType(optional=True, check=is_mac, expect="a MAC address xx:xx:xx:xx:xx:xx")),
        Column("status", MapType(), runtime="interface_status"),
        Column("statistics", MapType(), runtime="interface_statistics"),
        Column("ofport", IntType(-1, 65535), runtime="interface_ofport"),
        # OVS's schema: an optional integer; cfm.c wants 1..8191, or any
        # positive value with other_config:cfm_extended=true (ROW_CHECKS).
        Column("cfm_mpid", IntType(1, INT64_MAX)),
        *(Column(name, type_, runtime="feature_column", runtime_keyed=True) for name, type_ in (
            ("cfm_fault", BoolType()),
            ("cfm_fault_status", SetType(StringType())),
            ("cfm_remote_mpids", SetType(IntType(1, INT64_MAX, optional=False))),
            ("cfm_health", IntType(0, 100)),
            ("cfm_remote_opstate", StringType(["up", "down"], optional=True)),
            ("cfm_flap_count", IntType(0, INT64_MAX)),
            ("lacp_current", BoolType()),
        )),
        # The netdev's state as the last netlink link event told it.
        *(Column(name, type_, runtime="netdev_column", runtime_keyed=True) for name, type_ in (
            ("link_state", StringType(["up", "down"], optional=True)),
            ("admin_state", StringType(["up", "down"], optional=True)),
            ("link_resets", IntType(0, INT64_MAX)),
            ("mtu", IntType(0, INT64_MAX)),
            ("mac_in_use", StringType(optional=True)),
            ("ifindex", IntType(0, INT64_MAX)),
            ("error", StringType(optional=True)),
        )),
    ),
    # Non-root tables (NON_ROOT): a row that no Bridge references any more
    # is removed when the command chain commits, as OVSDB's garbage collection.
    "Mirror": _columns(
        Column("name", StringType()),
        Column("select_all", BoolType()),
        Column("select_src_port", RefType("Port", weak=True)),
        Column("select_dst_port", RefType("Port", weak=True)),
        Column("select_vlan", SetType(IntType(*VLAN, optional=False)), noun="select VLAN"),
        Column("output_port", RefType("Port", single=True, weak=True)),
        Column("output_vlan", IntType(1, 4095), noun="output VLAN"),
        Column("snaplen", IntType(14, 65535)),
        Column("statistics", MapType(), runtime="feature_column", runtime_keyed=True),
        Column("external_ids", MapType()),
    ),
    "NetFlow": _columns(
        Column("targets", SetType(StringType(check=is_ip_port, expect=IP_PORT), min=1), noun="target"),
        Column("active_timeout", IntType(-1, INT64_MAX, optional=False, default=0)),
        Column("engine_type", IntType(0, 255)),
        Column("engine_id", IntType(0, 255)),
        Column("add_id_to_interface", BoolType()),
        Column("external_ids", MapType()),
        # Ours (read-only): datagrams and records sent, errors (export_feature.py).
        Column("statistics", MapType(), runtime="feature_column", runtime_keyed=True),
    ),
    "sFlow": _columns(
        Column("agent", StringType(optional=True)),
        Column("targets", SetType(StringType(check=is_ip_port, expect=IP_PORT), min=1), noun="target"),
        Column("sampling", IntType(1, 2 ** 32 - 1)),
        Column("polling", IntType(0, 2 ** 32 - 1)),
        # OVS takes any size; the datapath copies at most 256 bytes of a
        # sampled packet and sFlow needs at least the Ethernet header.
        Column("header", IntType(14, 256)),
        Column("external_ids", MapType()),
        # Ours (read-only): datagrams and records sent, errors (export_feature.py).
        Column("statistics", MapType(), runtime="feature_column", runtime_keyed=True),
    ),
    "IPFIX": _columns(
        Column("targets", SetType(StringType(check=is_ip_port, expect=IP_PORT)), noun="target"),
        Column("sampling", IntType(1, 2 ** 32 - 1)),
        Column("obs_domain_id", IntType(0, 2 ** 32 - 1)),
        Column("obs_point_id", IntType(0, 2 ** 32 - 1)),
        Column("cache_active_timeout", IntType(0, 4200)),
        Column("cache_max_flows", IntType(0, 2 ** 32 - 1)),
        Column("other_config", MapType(strict=True)),
        Column("external_ids", MapType()),
        # Ours (read-only): datagrams and records sent, errors (export_feature.py).
        Column("statistics", MapType(), runtime="feature_column", runtime_keyed=True),
    ),
    # OVS's Flow_Table: a name and a flow limit for the OpenFlow tables a
    # Bridge maps to it (ofproto/table_limits.py).  groups (eviction
    # fairness) and prefixes (classifier prefix tries) are not implemented.
    "Flow_Table": _columns(
        Column("name", StringType(optional=True)),
        Column("flow_limit", IntType(0, INT64_MAX)),
        Column("overflow_policy", StringType(["refuse", "evict"], optional=True)),
        Column("groups", UnsupportedSetType()),
        Column("prefixes", UnsupportedSetType()),
        Column("external_ids", MapType()),
    ),
    # OVS's SSL table, which OVS references from its Open_vSwitch row; there
    # is no Open_vSwitch table here, so the table holds at most one row,
    # written only by set-ssl (which checks the files first) and del-ssl:
    # the columns are read-only to set/clear.  Bootstrapping the CA
    # certificate is not supported, so bootstrap_ca_cert is always false.
    "SSL": _columns(
        Column("private_key", StringType(), mutable=False),
        Column("certificate", StringType(), mutable=False),
        Column("ca_cert", StringType(), mutable=False),
        Column("bootstrap_ca_cert", BoolType(), mutable=False),
    ),
}

# The other_config keys the switch reads, with their validators: every other
# key is refused (MapType strict), since the switch would never act on it.
MAP_KEYS = {
    ("Bridge", "other_config"): {
        "mac-aging-time": (is_positive_int, "a positive integer number of seconds"),
        "mac-table-size": (is_positive_int, "a positive integer"),
        "hwaddr": (is_mac, "a MAC address xx:xx:xx:xx:xx:xx"),
        # read by ofproto/ofswitch.py; ranges as ovs-vswitchd.conf.db(5)
        # (0, "disable", would make every read time out at once: not offered)
        "inactivity-probe": (int_text(1000, INT32_MAX), f"an integer number of milliseconds 1000..{INT32_MAX}"),
        "datapath-id": (lambda v: re.fullmatch(r"[0-9a-fA-F]{16}", v) is not None, "exactly 16 hex digits"),
    },
    # Ranges as documented in ovs-vswitchd.conf.db(5) for OVS 3.1.
    ("Port", "other_config"): {
        "lacp-time": (one_of("fast", "slow"), "fast or slow"),
        "lacp-system-id": (is_mac, "a MAC address xx:xx:xx:xx:xx:xx"),
        "lacp-system-priority": (int_text(1, 65535), _range(1, 65535)),
        "lacp-fallback-ab": (one_of("true", "false"), "true or false"),
        "bond-detect-mode": (one_of("carrier", "miimon"), "carrier or miimon"),
        "bond-miimon-interval": (int_text(1, INT32_MAX), "a positive integer number of milliseconds"),
        "bond-rebalance-interval": (int_text(0, INT32_MAX),
                                    f"an integer number of milliseconds 0..{INT32_MAX} (0 disables rebalancing)"),
        "bond-primary": (lambda v: v != "", "an interface name"),
        "bond-hash-basis": (int_text(0, 2 ** 32 - 1), _range(0, 2 ** 32 - 1)),
    },
    ("Interface", "other_config"): {
        "lacp-port-id": (int_text(1, 65535), _range(1, 65535)),
        "lacp-port-priority": (int_text(1, 65535), _range(1, 65535)),
        "lacp-aggregation-key": (int_text(1, 65535), _range(1, 65535)),
        "cfm_interval": (int_text(1, INT32_MAX), "a positive integer number of milliseconds"),
        "cfm_extended": (one_of("true", "false"), "true or false"),
        "cfm_opstate": (one_of("up", "down"), "up or down"),
        "cfm_ccm_vlan": (lambda v: v == "random" or int_text(1, 4095)(v), 'an integer 1..4095 or "random"'),
        "cfm_ccm_pcp": (int_text(1, 7), _range(1, 7)),
        "cfm_demand": (one_of("true", "false"), "true or false"),
        # Our extensions (OVS always uses MD and MA name "ovs" at level 0).
        "cfm_md_name": (lambda v: 1 <= len(v) <= 43, "a string of 1..43 characters"),
        "cfm_ma_name": (lambda v: 1 <= len(v) <= 43, "a string of 1..43 characters"),
        "cfm_md_level": (int_text(0, 7), _range(0, 7)),
    },
    # Bridge IPFIX samples packets as they come in (bridge/ipfix_feature.py);
    # OVS's output and tunnel sampling and virtual_obs_id are not done.
    ("IPFIX", "other_config"): {
        "enable-input-sampling": (one_of("true", "false"), "true or false"),
    },
}
for (_table, _column), _keys in MAP_KEYS.items():
    TABLES[_table][_column].type.keys = _keys


def _check_cfm_mpid(row, where):
    mpid = row.get("cfm_mpid")
    extended = row.get("other_config", {}).get("cfm_extended") == "true"
    if mpid is not None and not extended and not 1 <= mpid <= 8191:
        raise SchemaError(f"{where}: invalid cfm_mpid {mpid} (must be 1..8191 unless "
                          f"other_config:cfm_extended=true)")


# Interface options each type uses (the port-type registry's); every other
# key would be stored and never acted on.
INTERFACE_OPTIONS = port_types.schema_options()
INTERFACE_REQUIRED = port_types.schema_required()


def _check_options(row, where):
    kind = row.get("type") or ""
    allowed = INTERFACE_OPTIONS.get(kind, {})
    for key, value in (row.get("options") or {}).items():
        if key not in allowed:
            uses = ("uses only: " + ", ".join(sorted(allowed))) if allowed else "takes no options"
            raise SchemaError(f"{where}: unknown key options:{key} (interface type "
                              f"{json.dumps(kind or 'system')} {uses})")
        check, expect = allowed[key]
        if not check(value):
            raise SchemaError(f"{where}: invalid options:{key} {json.dumps(value)} (must be {expect})")
    for key in INTERFACE_REQUIRED.get(kind, ()):
        if key not in (row.get("options") or {}):
            raise SchemaError(f"{where}: missing options:{key} (interface type {json.dumps(kind)} "
                              f"requires it)")


def _check_mirror_output(row, where):
    if row.get("output_port") is not None and row.get("output_vlan") is not None:
        raise SchemaError(f"{where}: a mirror has output_port or output_vlan, not both")


ROW_CHECKS = {"Interface": [_check_cfm_mpid, _check_options], "Mirror": [_check_mirror_output]}

# Tables whose rows live only while a Bridge references them (OVSDB non-root
# tables), and which Bridge column does.
NON_ROOT = {"Mirror": "mirrors", "NetFlow": "netflow", "sFlow": "sflow", "IPFIX": "ipfix",
            "Flow_Table": "flow_tables"}
# Tables whose rows need not have distinct names (OVS allows two mirrors "m0").
UNNAMED_OR_DUPLICATE = {"Mirror", "NetFlow", "sFlow", "IPFIX", "SSL", "Flow_Table"}


def ref_columns():
    """[(table, column name, RefType)] for every changeable reference column."""
    return [(table, name, column.type) for table, columns in TABLES.items()
            for name, column in columns.items() if isinstance(column.type, RefType)]


def collect_garbage(config):
    """OVSDB's rules at commit: weak references to rows that are gone are
    dropped; rows of non-root tables that no Bridge references are removed."""
    for table, name, kind in ref_columns():
        if not kind.weak:
            continue
        alive = config.get(kind.table, {})
        for row in config.get(table, {}).values():
            value = row.get(name)
            if kind.single:
                if value is not None and value not in alive:
                    row[name] = None
            elif value:
                row[name] = [ref for ref in value if ref in alive]
    referenced = set()
    for table, name, kind in ref_columns():
        if kind.table in NON_ROOT and not kind.weak:
            for row in config.get(table, {}).values():
                referenced.update(kind.refs(row.get(name, kind.empty())))
    for table in NON_ROOT:
        rows = config.get(table, {})
        for uuid in [uuid for uuid in rows if uuid not in referenced]:
            del rows[uuid]


def table_named(name):
    """Canonical table name, matched case-insensitively."""
    for table in TABLES:
        if table.lower() == name.lower():
            return table
    raise SchemaError(f'unknown table "{name}" (tables: {", ".join(TABLES)})')


def column_named(table, name):
    column = TABLES[table].get(name)
    if column is None:
        raise SchemaError(f'{table} does not contain a column whose name matches "{name}"')
    return column


def stored_columns(table):
    return [column for column in TABLES[table].values() if column.runtime is None]


def new_row(table, **values):
    """A row with every stored column at its empty value, then `values`."""
    row = {column.name: column.type.empty() for column in stored_columns(table)}
    row.update(values)
    return row


def empty_config():
    return {table: {} for table in TABLES}


def validate_row(table, row, where):
    for name, value in row.items():
        column = column_named(table, name)
        if column.runtime is not None:
            raise SchemaError(f"{where}: runtime column {name} cannot be stored")
        column.check(value, where)
    for check in ROW_CHECKS.get(table, []):
        check(row, where)


def validate_config(config):
    """Check every row and the references between tables: each Port in exactly
    one Bridge, each Interface in exactly one Port, names unique per table."""
    for table in TABLES:
        names = set()
        for uuid, row in config.get(table, {}).items():
            where = row.get("name") or f"{table} {uuid}"
            validate_row(table, row, where)
            if where in names and table not in UNNAMED_OR_DUPLICATE:
                raise SchemaError(f"duplicate {table} name {where}")
            names.add(where)
    for table, name, kind in ref_columns():
        for uuid, row in config.get(table, {}).items():
            for ref in kind.refs(row.get(name, kind.empty())):
                if ref not in config.get(kind.table, {}):
                    raise SchemaError(f'transaction error: {{"details":"Table {table} column {name} row {uuid} '
                                      f'references nonexistent row {ref} in table {kind.table}.",'
                                      f'"error":"referential integrity violation"}}')
    for parent, column, child in (("Bridge", "ports", "Port"), ("Port", "interfaces", "Interface")):
        owner = {}
        for uuid, row in config.get(parent, {}).items():
            for ref in row[column]:
                if ref not in config.get(child, {}):
                    raise SchemaError(f"{parent} {row['name']} refers to a missing {child} {ref}")
                if ref in owner:
                    raise SchemaError(f"{child} {config[child][ref]['name']} is in two {parent} rows")
                owner[ref] = uuid
        for uuid, row in config.get(child, {}).items():
            if uuid not in owner:
                raise SchemaError(f"{child} {row['name']} is not in any {parent}")
