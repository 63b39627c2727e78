"""Render a bond's show dict as text laid out like OVS 3.1's `ovs-appctl
bond/show` (ofproto/bond.c, bond_print_details), so scripts written for OVS
parse it unchanged.

Input, one dict per bond (produced by the bond module):

    {"name": "bond0", "bond_mode": "balance-tcp", "bond_hash_basis": 0,
     "updelay": 0, "downdelay": 0,               # ms
     "next_rebalance": 6459,                     # ms, None: no rebalancing
     "lacp_status": "negotiated" | "configured" | "off",
     "lacp_fallback_ab": False, "primary": None | "p1",
     "active_member": None | "p1", "active_member_mac": "00:00:00:00:00:00",
     "members": {"p1": {"enabled": True, "may_enable": True,
                        "hashes": {17: 1234}}}}  # hash -> bytes of load

Optional keys: "all_members_active" (balance-slb, default False) and, per
member, "delay_expires" (ms until a pending up/down delay ends).

Lines that describe OVS datapath internals are kept, so a parser that looks
for them still finds them, with values true of this switch: it neither
recirculates bond traffic nor uses the lb_output action, hence always
`bond may use recirculation: no, Recirc-ID : -1` and `lb_output action:
disabled, bond-id: -1` (what OVS prints for a bond that does neither).
As in OVS, a hash appears only once it carries at least 1 kB of load, and
hashes are listed only while the bond rebalances ("next rebalance" shown).
JSON turns the hash keys into strings; both forms are accepted.
"""


def render(show: dict) -> str:
    """One bond's block, ending with its trailing blank line (as OVS)."""
    balanced = show.get("next_rebalance") is not None
    lines = [f"---- {show['name']} ----",
             f"bond_mode: {show['bond_mode']}",
             "bond may use recirculation: no, Recirc-ID : -1",
             f"bond-hash-basis: {show.get('bond_hash_basis', 0)}",
             "lb_output action: disabled, bond-id: -1"]
    if show["bond_mode"] == "balance-slb":
        lines.append(f"all members active: {_bool(show.get('all_members_active', False))}")
    lines += [f"updelay: {show['updelay']} ms",
              f"downdelay: {show['downdelay']} ms"]
    if balanced:
        lines.append(f"next rebalance: {show['next_rebalance']} ms")
    primary = show.get("primary")
    members = show["members"]
    active = show.get("active_member")
    lines += [f"lacp_status: {show['lacp_status']}",
              f"lacp_fallback_ab: {_bool(show['lacp_fallback_ab'])}",
              "active-backup primary: " + (f"{primary}" if primary else "<none>")
              + (" (no such member)" if primary and primary not in members else ""),
              f"active member mac: {show['active_member_mac']}({active if active in members else 'none'})"]
    for name in sorted(members):
        member = members[name]
        lines += ["", f"member {name}: {'enabled' if member['enabled'] else 'disabled'}"]
        if name == active:
            lines.append("  active member")
        if member.get("delay_expires") is not None:
            kind = "downdelay" if member["enabled"] else "updelay"
            lines.append(f"  {kind} expires in {member['delay_expires']} ms")
        lines.append(f"  may_enable: {_bool(member['may_enable'])}")
        if balanced:
            for hash_, load in sorted(((int(h), b) for h, b in member.get("hashes", {}).items())):
                if load // 1024:
                    lines.append(f"  hash {hash_}: {load // 1024} kB load")
    return "\n".join(lines) + "\n\n"


def _bool(value):
    return "true" if value else "false"
