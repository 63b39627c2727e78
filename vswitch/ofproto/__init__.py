"""The slow path's forwarding logic: what a flow-cache miss turns into.

Design note.  `normal.xlate()` runs one packet's flow key through a bridge's
NORMAL pipeline (VLAN input rules, MAC learning, forwarding, VLAN output
rules) and returns the datapath actions, the megaflow mask of every field it
read, the tags that say when the megaflow goes stale, and a trace of its
decisions in words.  It is pure: the bridge configuration and MAC table are
passed in and time is a parameter, so it is tested without a datapath.
OpenFlow tables will sit in front of NORMAL here later.
"""
