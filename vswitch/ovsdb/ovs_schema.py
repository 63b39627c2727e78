"""Open vSwitch's `Open_vSwitch` database schema, as OVS 3.1.0 ships it
(/usr/share/openvswitch/vswitch.ovsschema, schema version 8.3.1; Open
vSwitch is Apache-2.0 licensed).  Kept as data, unchanged, in
vswitch/data/vswitch.ovsschema, so the daemon needs neither OVS installed
nor the `ovs` Python package (whose import costs ~0.2 s of every restart); tests/unit/test_ovsdb_types.py and
test_ovsdb_monitor.py check it against the installed file.  vswitch's own
additions (read-only statistics columns) are made in model.py, not here."""

from importlib import resources

SCHEMA_JSON = resources.files("vswitch").joinpath("data/vswitch.ovsschema").read_text()
