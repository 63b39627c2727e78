"""LACP (IEEE 802.1AX-2008 Link Aggregation Control Protocol) for one bond.

Design: `pdu` is the wire codec (pure functions, raises MalformedFrame),
`machines` holds the Receive, Periodic Transmission and Mux machines as
`{(state, event): (action, next_state)}` tables plus the Selection Logic,
`member` keeps one port's variables and the tables' entry actions, `engine`
ties them together behind the shape every protocol engine has
(configure / process_packet / run / next_wakeup / show, time passed in), and
`show` renders show() like `ovs-appctl lacp/show`. The bond asks
`member_enabled()`: true only while a member is collecting and distributing,
or, with fallback_ab, while the partner is silent (defaulted) on every member.
"""
from vswitch.lacp.engine import LacpEngine
from vswitch.lacp.show import render as render_show

__all__ = ["LacpEngine", "render_show"]
