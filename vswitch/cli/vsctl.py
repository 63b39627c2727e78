"""vsctl: the ovs-vsctl-style client of vswitchd.

    vsctl [--rundir DIR] [--format table|json] [--timeout SECS] CMD ARGS [-- CMD ARGS]...

Global options come before the first command; the rest is split at `--` into
commands that the daemon runs as one transaction (`transact` over
DIR/vswitchd.sock). Exit status: 0 ok, 1 error (message on stderr),
2 when a `br-exists` answered no (as ovs-vsctl).
"""
import json
import os
import sys

from vswitch import __version__, rpc
from vswitch.config import commands as command_table
from vswitch.config.render import render

DEFAULT_RUNDIR = "/run/vswitch"
SOCKET_NAME = "vswitchd.sock"
VALUE_OPTIONS = {"--rundir": "rundir", "--format": "format", "-f": "format", "--timeout": "timeout"}

HELP = f"""\
vsctl: configure vswitchd (commands and options follow ovs-vsctl)
usage: vsctl [OPTIONS] COMMAND [ARG...] [-- [CMD-OPTIONS] COMMAND [ARG...]]...

Commands:
{{commands}}

Options:
  --rundir DIR          vswitchd run directory (default $VSWITCH_RUNDIR or {DEFAULT_RUNDIR})
  -f, --format FORMAT   output as "table" (default, like the OVS tools) or "json"
  --timeout SECS        give up when vswitchd has sent nothing for SECS seconds (default 5)
  --version             print the version and exit
  -h, --help            print this help and exit
Command options (before the command name): --may-exist, --if-exists, --fake-iface, --columns=COL,..."""


class UsageError(Exception):
    pass


def parse_args(argv):
    """-> (settings dict, list of command argv lists)."""
    settings = {"rundir": os.environ.get("VSWITCH_RUNDIR") or DEFAULT_RUNDIR,
                "format": "table", "timeout": 5.0, "help": False, "version": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, has_value, value = arg.partition("=")
        if arg in ("-h", "--help"):
            settings["help"] = True
        elif arg == "--version":
            settings["version"] = True
        elif name in VALUE_OPTIONS:
            if not has_value:
                if i + 1 == len(argv):
                    raise UsageError(f"option '{name}' requires an argument")
                i += 1
                value = argv[i]
            settings[VALUE_OPTIONS[name]] = value
        else:
            break
        i += 1
    if settings["format"] not in ("table", "json"):
        raise UsageError(f"unknown format '{settings['format']}' (use table or json)")
    try:
        settings["timeout"] = float(settings["timeout"])
    except ValueError:
        raise UsageError(f"invalid timeout '{settings['timeout']}' (seconds expected)") from None
    if settings["timeout"] <= 0:
        raise UsageError("timeout must be positive")
    return settings, split_commands(argv[i:])


def split_commands(args):
    """Split at `--`; empty pieces (leading `--`, `-- --`) are dropped."""
    commands, current = [], []
    for arg in args:
        if arg == "--":
            commands.append(current)
            current = []
        else:
            current.append(arg)
    commands.append(current)
    return [command for command in commands if command]


def print_outputs(commands, outputs, fmt):
    if fmt == "json":
        if any(output is not None for output in outputs):
            document = outputs[0] if len(outputs) == 1 else outputs
            print(json.dumps(document, indent=2, sort_keys=False))
        return
    for command, output in zip(commands, outputs):
        _, name, args = command_table.split_command(command)
        text = render(name, output, args)
        if text:
            print(text)


def read_flow_file(command):
    """add-flows BR FILE: the client reads FILE ("-" = stdin); the daemon may
    run elsewhere (another namespace) and gets the text."""
    _, name, args = command_table.split_command(command)
    if name != "add-flows" or len(args) != 2:
        return command
    if args[1] == "-":
        text = sys.stdin.read()
    else:
        with open(args[1]) as f:
            text = f.read()
    return command[:len(command) - 1] + [text]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        settings, commands = parse_args(argv)
    except UsageError as exc:
        return fail(str(exc))
    if settings["help"]:
        print(HELP.format(commands=command_table.usage()))
        return 0
    if settings["version"]:
        print(f"vsctl (vswitch) {__version__}")
        return 0
    if not commands:
        return fail("missing command name (use --help for help)")
    try:
        commands = [read_flow_file(command) for command in commands]
    except OSError as exc:
        return fail(str(exc))
    socket_path = os.path.join(settings["rundir"], SOCKET_NAME)
    try:
        reply = rpc.call(socket_path, "transact", {"commands": commands}, timeout=settings["timeout"])
    except (rpc.RpcError, ConnectionError, TimeoutError) as exc:
        return fail(str(exc))
    outputs = reply.get("outputs") if isinstance(reply, dict) else None
    if not isinstance(outputs, list) or len(outputs) != len(commands):
        return fail(f"malformed reply from vswitchd: {reply!r}")
    names = [command_table.split_command(command)[1] for command in commands]
    print_outputs(commands, outputs, settings["format"])
    if any(name == "br-exists" and output is False for name, output in zip(names, outputs)):
        return 2
    return 0


def fail(message):
    print(f"vsctl: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
