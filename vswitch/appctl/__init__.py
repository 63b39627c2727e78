"""`ovs-appctl` for vswitchd: Open vSwitch's unixctl protocol on RUNDIR/vswitchd.ctl.

Design note.

    ovs-appctl -t RUNDIR/vswitchd.ctl fdb/show br0

The real `ovs-appctl` (and OVS's Python `ovs.unixctl.client`) talk to the
daemon over a unix stream socket, as they talk to ovs-vswitchd.  Three parts:

- `protocol.py` is the wire protocol, as OVS's lib/unixctl.c and
  lib/jsonrpc.c: JSON-RPC 1.0 messages written back to back on the stream
  with no delimiter (a reader must find where each JSON object ends);
  request `{"id": N, "method": "fdb/show", "params": ["br0"]}`, reply
  `{"id": N, "result": "text\\n", "error": null}` or
  `{"id": N, "result": null, "error": "text\\n"}`.  A non-empty reply text
  gets a final newline when it has none (as unixctl_command_reply).  A
  command table (name, usage, min and max arguments, callback) answers
  `list-commands` and `version` by itself and gives OVS's errors word for
  word: `"foo" is not a valid command (use "list-commands" to see a list of
  valid commands)`, `"fdb/show" command requires at least 1 arguments`,
  `... takes at most N arguments`, `... has non-string argument`; after
  an error the connection stays usable.  Checked against ovs-appctl 3.1:
  it sends the request and nothing else (no version probe, no options).
- `commands.py` binds vswitchd's commands to the running daemon (its
  Switch, vlog Runtime, OpenFlow connection managers and stop event) and
  `render.py` writes their text in OVS 3.1's layouts (fdb/show, dpif/show,
  dpctl/dump-flows in the datapath's ODP syntax, pmd-stats-show,
  ofproto/trace, vlog/list, memory/show); bond/show, lacp/show and cfm/show
  reuse the renderers vsctl already has (vswitch/config/bond_show.py,
  vswitch/lacp/show.py, vswitch/cfm/show.py).  `coverage.py` keeps
  coverage/show's counters and their 5 s / minute / hour rates.
- `start(daemon, path)` / `stop(server)` below are all the daemon calls.

Malformed input never blocks the daemon: every connection is its own
asyncio task reading what arrives; a message is at most MAX_MESSAGE bytes
and nests at most MAX_DEPTH deep.  Bytes that are not JSON, and well-formed
messages that are not requests (notifications, replies), end that one
connection, as OVS's jsonrpc does (a byte stream cannot be resynchronised
after a syntax error); an object with an `id` whose `method` or `params` is
wrong gets an error reply and the connection stays.  The socket is mode
0600 and follows vsctl's socket rules (vswitch/rpc_server.py `bind_socket`: a stale
socket file is replaced, a live server's is refused); the daemon unlinks it
on the way out before it lets go of its pid lock.  `exit` replies first,
then sets the daemon's stop event: the same shutdown as SIGTERM.
"""
import os

from vswitch.appctl.protocol import Reply, UnixctlError, UnixctlServer

__all__ = ["Reply", "UnixctlError", "UnixctlServer", "start", "stop"]


async def start(daemon, path):
    """Serves vswitchd's commands (commands.py) on `path`; returns the server."""
    from vswitch.appctl import commands
    server = commands.make_server(daemon)
    await server.start(path)
    return server


async def stop(server):
    """Closes the listener and every connection, then unlinks the socket."""
    if server is not None:
        await server.close()


def ctl_path(rundir):
    return os.path.join(rundir, "vswitchd.ctl")
