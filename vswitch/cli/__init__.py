"""Command-line clients. `vsctl` (vsctl.py) sends one `transact` JSON-RPC
request per command line to vswitchd and renders the outputs; it holds no
configuration logic itself (that is vswitch.config.commands, in the daemon)."""
