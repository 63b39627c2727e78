"""The datapath: Python's handle on the C fast path (csrc/).

Design note.  `dpif.Datapath` wraps the cffi module with batch-shaped calls
(add/remove port, put/delete/dump megaflows, drain upcalls, execute actions)
and converts between the C flow key and `flowkey.FlowKey` dicts.  Nothing in
this package looks at packets that hit the flow cache: those never leave C.
"""
