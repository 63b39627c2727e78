"""The bridge layer: what a bridge is at run time, and the features that
plug into it.

  feature.py       the one small interface every feature implements
                   (configure, claim, process_packet, port_xlate, usable,
                   link_changed, flow_stats, run, next_wakeup, show, column)
                   and what the bridge offers it (FeatureHost).
  bridge.py        Bridge: MAC table, NORMAL's port map, interface names, and
                   the loop over FEATURES; it adds no method per feature.
  bond.py          bonds (active-backup, balance-slb, balance-tcp): member
                   choice and admission for NORMAL, rebalancing, updelay.
  lacp_feature.py  802.1AX on ports with lacp=active|passive (vswitch/lacp).
  cfm_feature.py   802.1ag MEPs on interfaces with cfm_mpid (vswitch/cfm).
  mirror.py        SPAN and RSPAN mirrors: copies inserted into megaflow
                   actions (xlate_actions), output ports reserved.

The Switch (vswitch/switch.py) owns the datapath, the interfaces and the
megaflow cache and builds one Bridge per Bridge row.  A new feature (mirror,
exporter, tunnel) is a new module here plus one entry in bridge.FEATURES.
"""
