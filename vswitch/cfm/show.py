"""Render CfmEngine.show() as text laid out like `ovs-appctl cfm/show`
(Open vSwitch 3.1, checked against its output): the MEP's faults, average
health, operational states, interval, next CCM and next fault check, then
each remote MEP.  Our extras (level, MAID, remote MEP state, counters) are in
the show dict (`vsctl --format json cfm-show`), not in this text, so scripts
written for OVS parse it unchanged.  `health` and `recv_since_check` are
filled in by the bridge's CFM feature; an engine alone shows them undefined.
"""


def render(show: dict) -> str:
    lines = []
    for port, m in show["interfaces"].items():
        lines += [f"---- {port} ----",
                  f"MPID {m['mpid']}:" + (" extended" if m["extended"] else "")]
        if m["fault"]:
            lines.append(f"  fault: {' '.join(m['fault'])}")
        health = m.get("health")
        lines += [f"  average health: {'undefined' if health is None else health}",
                  f"  opstate: {m['opstate']}",
                  f"  remote_opstate: {m['remote_opstate']}",
                  f"  interval: {m['interval_ms']:g}ms",
                  f"  next CCM tx: {m['next_ccm_tx_ms']:.0f}ms",
                  f"  next fault check: {m.get('next_fault_check_ms', m['interval_ms'] * 3.5):.0f}ms"]
        for mpid, r in m["remote_meps"].items():
            lines += [f"Remote MPID {mpid}",
                      f"  recv since check: {'true' if r.get('recv_since_check') else 'false'}",
                      f"  opstate: {r['opstate']}"]
    return "\n".join(lines) + "\n"
