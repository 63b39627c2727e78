"""OpenFlow xlate of the header-stack actions: PBB, VLAN stacking, TTL copies.

Design note.  A mixin of pipeline._Xlate (it uses the translation's `state`,
`frame`, `mpls`, read() and emit()).  The flow key holds the outer Ethernet
header, one VLAN tag and, for a PBB frame (Ethertype 0x88e7), the I-SID
(csrc/flow_key.h).  So:

- push_pbb / push_vlan hide headers the translation knows exactly: what they
  hide is kept on a stack and a later pop in the same translation brings it
  back.  No frame is read, the flow stays cacheable (the datapath does the
  push and pop, csrc/packet_edit.c).
- A pop that uncovers what only the frame has (the customer frame under an
  I-TAG, a second VLAN tag) parses the frame with the C parser.  Those fields
  are "frame-derived" (`from_frame`): the flow becomes slow-path only if a
  later table or action reads one of them (pipeline's read()), since the
  megaflow, matching the outer key, could not hold them.  A pop followed by
  outputs is cached.
- copy_ttl_out / copy_ttl_in move the TTL between the top MPLS label and the
  IP header under the label stack; MPLS flows are slow-path already
  (pipeline's MPLS note), so the IP TTL is read from the frame.
"""
from vswitch.datapath.flowkey import FIELDS, VLAN_CFI

ETH_PBB = 0x88E7
TPID_8021Q = 0x8100
VLAN_TPIDS = (TPID_8021Q, 0x88A8)
ETH_ADDRS_LEN = 12   # destination and source MAC
VLAN_TAG_LEN = 4
ITAG_LEN = 4         # after the 0x88e7 Ethertype
PBB_ISID_MASK = 0xFFFFFF
MPLS_TTL_MASK = 0xFF
IP_VERSION_TTL_OFFSET = {4: 8, 6: 7}  # IP version -> offset of TTL / hop limit
# Pipeline state a push or pop never changes: where the packet came from.
PORT_STATE = ("in_port", "tun_id", "tun_src", "tun_dst")
# Flow key fields describing the packet's headers (a pop replaces them all).
HEADER_FIELDS = tuple(f for f in FIELDS if f not in PORT_STATE)
ADDRESS_FIELDS = ("dl_src", "dl_dst")


def _itag_end(frame):
    """Offset just past the I-TAG of a PBB frame (outer tag allowed), or None."""
    off = ETH_ADDRS_LEN
    if frame[off:off + 2] in (b"\x81\x00", b"\x88\xa8"):
        off += VLAN_TAG_LEN
    if frame[off:off + 2] != ETH_PBB.to_bytes(2, "big") or len(frame) < off + 2 + ITAG_LEN:
        return None
    return off + 2 + ITAG_LEN


class EncapXlate:
    """PBB / VLAN stack / copy-TTL actions; initialise with _init_encap()."""

    def _init_encap(self):
        self.from_frame = set()   # state fields parsed from the frame after a pop
        self.hidden = []          # (kind, saved state) pushed by this translation, top first

    # --- what a pop uncovers --------------------------------------------------
    def _uncover_from_frame(self, inner, keep_addresses):
        """State := the C parser's key of `inner` (the frame after the pop).
        Every header field becomes frame-derived."""
        from vswitch.datapath import dpif
        from vswitch.ofproto import pipeline
        port_state = {k: self.state[k] for k in PORT_STATE if k in self.state}
        addrs = {k: self.state.get(k, 0) for k in ADDRESS_FIELDS}
        key = dpif.parse_frame(inner, self.state.get("in_port", 0)) if inner else None
        key = key or {}
        self.state = {**{f: key.get(f, 0) for f in HEADER_FIELDS}, **port_state}
        if keep_addresses:
            self.state.update(addrs)
        self.frame = inner
        self.mpls, self.mpls_payload = [], None
        if key.get("dl_type") in pipeline.ETH_MPLS:
            self._parse_mpls()
        elif inner:
            self.state.update(pipeline.frame_fields(inner, key))
        self.from_frame = set(HEADER_FIELDS) - (set(ADDRESS_FIELDS) if keep_addresses else set())
        if not inner:
            self.r.slow_path = True  # nothing to parse: a trace, or a cut frame

    def _hide(self, kind):
        saved = {k: v for k, v in self.state.items() if k not in PORT_STATE}
        self.hidden.insert(0, (kind, saved, set(self.from_frame), list(self.mpls),
                               self.mpls_payload, self.frame))

    def _unhide(self, kind):
        """Restores the state a push of `kind` hid; False if the top of the
        stack is not one (the header to pop came with the frame)."""
        if not self.hidden or self.hidden[0][0] != kind:
            return False
        _, saved, from_frame, mpls, payload, frame = self.hidden.pop(0)
        port_state = {k: self.state[k] for k in PORT_STATE if k in self.state}
        self.state = {**saved, **port_state}
        self.from_frame, self.mpls, self.mpls_payload, self.frame = from_frame, mpls, payload, frame
        return True

    # --- PBB -----------------------------------------------------------------
    def push_pbb(self, ethertype):
        """A new outer Ethernet header (the same addresses) and an I-TAG with
        I-SID 0 (OF1.3 7.2.4 / 802.1ah) in front of the whole frame."""
        self._hide("pbb")
        self.emit("push_pbb", ethertype)
        for name in HEADER_FIELDS:
            if name not in ADDRESS_FIELDS:
                self.state[name] = 0
        for name in list(self.state):
            if name not in FIELDS:
                del self.state[name]   # MPLS / frame fields of the hidden frame
        self.state["dl_type"] = ethertype
        self.from_frame -= set(HEADER_FIELDS) - set(ADDRESS_FIELDS)
        self.mpls, self.mpls_payload = [], None

    def pop_pbb(self):
        if self.read("dl_type") != ETH_PBB:
            self.r.trace.append("    pop_pbb: no I-TAG, no change")
            return
        self.emit("pop_pbb")
        if self._unhide("pbb"):
            return
        end = _itag_end(self.frame) if self.frame else None
        self._uncover_from_frame(self.frame[end:] if end else None, keep_addresses=False)

    def set_pbb_isid(self, value):
        if self.read("dl_type") != ETH_PBB:
            self.r.trace.append("    set pbb_isid: no I-TAG, skipped")
            return
        self.emit("set_pbb_isid", value & PBB_ISID_MASK)
        self.state["pbb_isid"] = value & PBB_ISID_MASK

    # --- VLAN stack ----------------------------------------------------------
    def push_vlan(self, tpid):
        """A new outer tag; on a tagged packet it copies the outer tag's
        VID and PCP (OF1.3 7.2.4), on an untagged one VID 0, PCP 0."""
        tci = self.read("vlan_tci")
        if tci & VLAN_CFI:
            self._hide("vlan")
        tpid_bits = 0 if tpid == TPID_8021Q else tpid << 16
        self.emit("push_vlan", tpid_bits | ((tci & ~VLAN_CFI) if tci & VLAN_CFI else 0))

    def pop_vlan(self):
        tci = self.read("vlan_tci")
        if not tci & VLAN_CFI:
            return
        self.emit("pop_vlan")
        if self._unhide("vlan"):
            return
        # The key stops at a second tag (dl_type is its TPID): the frame has it.
        if self.read("dl_type") in VLAN_TPIDS and self.frame and len(self.frame) >= ETH_ADDRS_LEN + VLAN_TAG_LEN:
            f = self.frame
            self._uncover_from_frame(f[:ETH_ADDRS_LEN] + f[ETH_ADDRS_LEN + VLAN_TAG_LEN:],
                                     keep_addresses=True)

    # --- TTL copies ----------------------------------------------------------
    def _inner_ip_ttl(self):
        """TTL of the IP header under the label stack, or None."""
        f, off = self.frame, self.mpls_payload
        if f is None or off is None or len(self.mpls) != 1 or len(f) <= off:
            return None
        at = IP_VERSION_TTL_OFFSET.get(f[off] >> 4)
        return f[off + at] if at is not None and len(f) > off + at else None

    def copy_ttl_out(self):
        from vswitch.ofproto import pipeline
        if self.read("dl_type") not in pipeline.ETH_MPLS or not self.mpls:
            self.r.trace.append("    copy_ttl_out: no MPLS label, no change")
            return
        self.r.slow_path = True
        ttl = self._inner_ip_ttl()
        if ttl is None:
            self.r.trace.append("    copy_ttl_out: no IP header under one label, no change")
            return
        self.set_mpls_lse((self.mpls[0] & ~MPLS_TTL_MASK) | ttl)

    def copy_ttl_in(self):
        from vswitch.ofproto import pipeline
        if self.read("dl_type") not in pipeline.ETH_MPLS or not self.mpls:
            self.r.trace.append("    copy_ttl_in: no MPLS label, no change")
            return
        self.r.slow_path = True
        if self._inner_ip_ttl() is None:
            self.r.trace.append("    copy_ttl_in: no IP header under one label, no change")
            return
        self.emit("set_inner_ttl", self.mpls[0] & MPLS_TTL_MASK)
