"""Configuration: schema, durable store, and the vsctl command engine.

Design: the configuration is plain JSON-able data shaped like OVSDB
(`{"Bridge": {uuid: row}, "Port": ..., "Interface": ...}`).
- schema.py   declares tables, column types, validation and runtime columns;
- commands.py runs an ovs-vsctl command chain on a copy (all or nothing) and
              returns per-command structured outputs; live state (FDB, port
              counters, flows) comes from a `runtime` object the daemon passes;
- store.py    persists a whole config in one SQLite transaction;
- render.py   turns outputs into OVS-tool-like text (shared by vsctl/daemon).
The daemon owns the loop: load() -> execute() -> commit() if changed -> apply.
"""
