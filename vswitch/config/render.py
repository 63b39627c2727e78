"""Text renderings of command outputs, shaped like the OVS tools' output.

`render(command, output, args)` -> text (no trailing newline; "" prints nothing).
Values use OVSDB's text syntax as ovs-vsctl prints it: `[]` for empty,
`[10, 20]` for sets, `{key=value}` for maps, strings bare when they are plain
words and JSON-quoted otherwise. fdb-show mirrors `ovs-appctl fdb/show`,
dump-ports `ovs-ofctl dump-ports`, dpctl-dump-flows `ovs-appctl
dpctl/dump-flows`, lacp-show/bond-show/cfm-show `ovs-appctl lacp/show`,
`bond/show`, `cfm/show` (OVS 3.1 layout), vlog-list `vlog/list`. Anything else falls back to one
item per line.
"""
import importlib
import json
import re

from vswitch.config import bond_show, schema

_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def format_value(value, int_keys=False):
    """A value in OVSDB text syntax, as ovs-vsctl get/list print it.
    int_keys: the value is a map with integer keys (Bridge flow_tables),
    which reach the client as decimal text (the reply is JSON): they print
    bare and in numeric order, as ovs-vsctl prints integers.  A string key
    that looks like a number stays quoted, as ovs-vsctl quotes it."""
    if value is None:
        return "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        plain = _BARE.fullmatch(value) and value not in ("true", "false")
        return value if plain or _UUID.fullmatch(value) else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if int_keys:
            items = sorted((int(k), v) for k, v in value.items())
            return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in items) + "}"
        return "{" + ", ".join(f"{format_value(k)}={format_value(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def _int_keyed(table, column_text):
    """Is `column_text` (a column of `table`, no `:key`) a map with integer
    keys?  Unknown names are not (the daemon has already refused them)."""
    try:
        column = schema.column_named(schema.table_named(table), column_text)
    except (schema.SchemaError, KeyError):
        return False
    return isinstance(column.type, schema.RefMapType)


def render_lines(items):
    return "\n".join(str(item) for item in items)


def render_get(values, args=()):
    """`get TABLE RECORD COLUMN[:KEY]...`: one value per line."""
    table, columns = (args[0], args[2:]) if len(args) >= 2 else (None, ())
    keyed = [":" not in c and table is not None and _int_keyed(table, c) for c in columns]
    keyed += [False] * (len(values) - len(keyed))
    return "\n".join(format_value(value, int_keys) for value, int_keys in zip(values, keyed))


def render_records(records, args=()):
    """`list`/`find TABLE ...`: one `column : value` block per record, blank line between."""
    table = args[0] if args else None
    return "\n\n".join("\n".join(f"{name:<20}: {format_value(value, table is not None and _int_keyed(table, name))}"
                                  for name, value in record.items())
                       for record in records)


def render_show(show):
    lines = []
    for bridge in show["bridges"]:
        lines.append(f"    Bridge {format_value(bridge['name'])}")
        lines += [f"        Controller {json.dumps(target)}" for target in bridge.get("controller", [])]
        if bridge.get("fail_mode"):
            lines.append(f"        fail_mode: {bridge['fail_mode']}")
        for port in bridge["ports"]:
            # As ovs-vsctl show: of a port's own columns only tag and trunks.
            lines.append(f"        Port {format_value(port['name'])}")
            lines += [f"            {key}: {format_value(port[key])}"
                      for key in ("tag", "trunks") if port.get(key) not in (None, [])]
            for iface in port["interfaces"]:
                lines.append(f"            Interface {format_value(iface['name'])}")
                lines += [f"                {key}: {format_value(iface[key])}"
                          for key in ("type", "options", "error") if iface.get(key)]
    lines.append(f"    vswitch_version: {json.dumps(show.get('version', ''))}")
    return "\n".join(lines)


def render_ssl(ssl):
    """get-ssl, as ovs-vsctl prints it."""
    return (f"Private key: {ssl['private_key']}\nCertificate: {ssl['certificate']}\n"
            f"CA Certificate: {ssl['ca_cert']}\nBootstrap: {'true' if ssl['bootstrap_ca_cert'] else 'false'}")


def render_fdb(entries):
    lines = [" port  VLAN  MAC                Age"]
    lines += [f"{e['port']:>5}  {e['vlan']:>4}  {e['mac']:<17}  {e['age']:>3}" for e in entries]
    return "\n".join(lines)


def render_ports(ports):
    lines = [f"port statistics: {len(ports)} ports"]
    for p in ports:
        head = f"  port {p.get('ofport', '?'):>2} ({p['port']}): "
        lines.append(f"{head}rx pkts={p['rx_packets']}, bytes={p['rx_bytes']}, drop={p['rx_dropped']}")
        lines.append(f"{'':<{len(head)}}tx pkts={p['tx_packets']}, bytes={p['tx_bytes']}, drop={p['tx_dropped']}")
    return "\n".join(lines)


def render_dp_flows(flows):
    def used(value):
        return "never" if value is None else f"{value:.3f}s"
    return "\n".join(f"{f['match']}, packets:{f['packets']}, bytes:{f['bytes']}, used:{used(f.get('used'))}, "
                     f"actions:{f['actions']}" for f in flows)


def render_flows(flows):
    """OpenFlow flows: ` key=value, ... MATCH actions=ACTIONS` per flow."""
    lines = []
    for flow in flows:
        if "text" in flow:  # already in ovs-ofctl's layout
            lines.append(flow["text"])
            continue
        fields = ", ".join(f"{k}={v}" for k, v in flow.items() if k not in ("match", "actions"))
        match = flow.get("match", "")
        lines.append(" " + " ".join(part for part in (fields, match) if part) + f" actions={flow.get('actions', '')}")
    return "\n".join(lines)


def render_generic(output, indent=""):
    """Strings as they are, lists one item per line, dicts as `key: value` trees."""
    if output is None:
        return ""
    if isinstance(output, dict):
        lines = []
        for key, value in output.items():
            if isinstance(value, (dict, list)):
                lines.append(f"{indent}{key}:")
                lines.append(render_generic(value, indent + "  "))
            else:
                lines.append(f"{indent}{key}: {value}")
        return "\n".join(lines)
    if isinstance(output, list):
        return "\n".join(render_generic(item, indent) if isinstance(item, (dict, list)) else f"{indent}{item}"
                         for item in output)
    return f"{indent}{output}"


def render_trace(t):
    lines = [f"Bridge: {t['bridge']}", f"Flow: {t['flow']}", f"Pipeline: {t['pipeline']}", ""]
    lines += t["trace"]
    lines += ["", f"Megaflow: {t['megaflow']}", f"Datapath actions: {t['datapath_actions']}"]
    return "\n".join(lines)


def render_tables(tables):
    return "\n".join(f"  table {t['table']} (\"{t['name']}\"): active={t['active']}, lookup={t['lookup']}, "
                     f"matched={t['matched']}, max_entries={t['max_entries']}" for t in tables)


def _concatenated(render_one):
    """A list of show dicts -> the OVS tool's text for all of them, which
    ends in a newline that print() adds back."""
    def render_all(shows):
        text = "".join(render_one(show) for show in shows)
        return text[:-1] if text.endswith("\n") else text
    return render_all


def _imported_on_use(module, name):
    """`module`.`name`, imported when first called: importing the lacp and
    cfm packages (their engines) and vlog (logging.handlers) cost every vsctl
    call ~50 ms of start-up, for the few commands that render with them."""
    def call(*args):
        return getattr(importlib.import_module(module), name)(*args)
    return call


RENDERERS = {
    "lacp-show": _concatenated(_imported_on_use("vswitch.lacp.show", "render")),
    "bond-show": _concatenated(bond_show.render),
    "cfm-show": _concatenated(_imported_on_use("vswitch.cfm.show", "render")),
    "get": render_get,
    "list": render_records,
    "find": render_records,
    "show": render_show,
    "fdb-show": render_fdb,
    "get-ssl": render_ssl,
    "dump-ports": render_ports,
    "dpctl-dump-flows": render_dp_flows,
    "dump-dp-flows": render_dp_flows,
    "dump-flows": render_flows,
    "dump-groups": render_flows,
    "dump-tables": render_tables,
    "trace": render_trace,
    "vlog-list": _imported_on_use("vswitch.vlog", "render_list"),
    "br-exists": lambda exists: "",     # answered by the exit status, as ovs-vsctl does
}


# Renderers that need the command's arguments (the table, for column types).
WITH_ARGS = {"get", "list", "find"}


def render(command, output, args=()):
    if output is None:
        return ""
    if command in WITH_ARGS:
        return RENDERERS[command](output, args)
    return RENDERERS.get(command, render_generic)(output)
