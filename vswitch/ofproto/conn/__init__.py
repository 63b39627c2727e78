"""OpenFlow connections: targets and the per-connection protocol.

Design note.  targets.py turns a controller target string (tcp:, ptcp:,
unix:, punix:) into what asyncio needs; ofconn.py runs one connection
(hello and version negotiation, framing, echo and inactivity probe, role and
async configuration, errors that keep the connection up) and hands every
request to the bridge's OFSwitch.  The per-bridge set of listeners and
reconnecting active connections is vswitch/ofproto/connmgr.py.
"""
