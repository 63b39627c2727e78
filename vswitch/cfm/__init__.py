"""CFM (IEEE 802.1ag, now 802.1Q clauses 18-22): continuity check only.

Design: `ccm` is the wire codec for CCMs and MAIDs (pure functions, raises
MalformedFrame), `mep` is one Maintenance association End Point with its
Remote MEP state machine as a table and its fault bookkeeping, `engine`
keeps one MEP per interface behind the shape every protocol engine has
(configure / process_packet / run / next_wakeup / show, time passed in) and
`show` renders like `ovs-appctl cfm/show`. Defaults interoperate with Open
vSwitch: MD name "ovs" and short MA name "ovs" (character strings), level 0,
CCMs to 01:80:c2:00:00:30, 1 s interval; fault names reuse OVS's words
(recv, rdi, maid, loopback, overflow) and add level, interval and
unexpected-mpid, which OVS does not raise.
"""
from vswitch.cfm.engine import CfmEngine
from vswitch.cfm.show import render as render_show

__all__ = ["CfmEngine", "render_show"]
