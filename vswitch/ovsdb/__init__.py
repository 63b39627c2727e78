"""OVSDB (RFC 7047): vswitchd serves its configuration as Open vSwitch's
`Open_vSwitch` database, so the real ovs-vsctl, ovsdb-client and OVS's IDLs
(libvirt, ovsdbapp, os-vif ...) drive it unchanged.

Design
------
One store, one way to change it.  The daemon's configuration dict (config/
schema.py tables, kept by config/store.py in SQLite) is the only state.  The
OVSDB view of it is derived (model.py) and a transaction's result is turned
back into a config dict, checked by the same validation as vsctl's commands
and handed to the daemon's `change_config`, which commits it in one SQLite
transaction and applies it to the switch - the path vsctl's commands take
too.  Every change, whichever door it came through, then reaches
`Database.config_changed`, which rebuilds the view and sends monitor updates
in the same event-loop turn.

Modules:
  ovs_schema.py  OVS 3.1's vswitch.ovsschema (8.3.1), as data
  types.py       OVSDB types and values: JSON notation, constraints,
                 conditions, mutations (no `ovs` package at run time: its
                 import costs ~0.2 s of every restart)
  model.py       the schema served, what each column is (stored, runtime,
                 fixed, unsupported), config <-> view; the Open_vSwitch row
                 and the Controller rows vswitch does not store as such
  transact.py    the transact operations and commit-time rules (references,
                 garbage collection, maxRows, indexes)
  monitor.py     monitor, monitor_cond(_change), monitor_cond_since; update,
                 update2, update3 notifications
  db.py          the database of a daemon: view, row versions, runtime
                 columns for monitors (refreshed on change and by the
                 revalidator, statistics every 5 s), the monitors
  server.py      JSON-RPC over punix:/ptcp: on the daemon's asyncio loop:
                 framing, bounds (message size, nesting, per-turn budget,
                 send backlog: a client that does not read is dropped),
                 locks, waits with timeouts, cancel

What is served and what is refused: the whole OVS schema is served, so any
OVS client finds every table and column its IDL registers.  Columns vswitch
stores are read and written; runtime columns (Interface ofport, status,
statistics, link_state, ... ; Bridge datapath_id) and fixed ones
(Open_vSwitch ovs_version, db_version, cur_cfg; Bridge datapath_type
"netdev") are read-only; everything else keeps its default value and a write
of any other value is a "constraint violation" naming the table and column,
as is an insert into a table vswitch does not implement (QoS, Manager, ...).
Values vswitch's own checks refuse (an Interface type it cannot open, an
other_config key it does not act on, ...) are constraint violations with
vsctl's message.
"""
from vswitch.ovsdb import model
from vswitch.ovsdb.db import Database
from vswitch.ovsdb.server import OvsdbServer, parse_remote

__all__ = ["Database", "OvsdbServer", "parse_remote", "start", "with_root"]


def with_root(config):
    """`config` with its Open_vSwitch row (created, with a new uuid, the first
    time a daemon runs on a store); the same object when it has one."""
    return model.ensure_root(config)


async def start(backend, remotes, **limits):
    """A Database on `backend` (the daemon) served on each parsed remote."""
    server = OvsdbServer(Database(backend), **limits)
    try:
        for remote in remotes:
            try:
                await server.listen(remote)
            except OSError as exc:
                where = f"punix:{remote[1]}" if remote[0] == "unix" else f"ptcp:{remote[2]}:{remote[1]}"
                raise OSError(f"{where}: {exc.strerror or exc}") from None
    except BaseException:
        await server.close()
        raise
    return server
