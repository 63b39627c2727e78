"""Render CfmEngine.show() as text laid out like `ovs-appctl cfm/show`."""


def render(show: dict) -> str:
    lines = []
    for port, m in show["interfaces"].items():
        lines += [f"---- {port} ----",
                  f"MPID {m['mpid']}:" + (" extended" if m["extended"] else "")]
        if m["fault"]:
            lines.append(f"  fault: {' '.join(m['fault'])}")
        lines += [f"  level: {m['level']}",
                  f"  maid: {m['maid']}",
                  f"  opstate: {m['opstate']}",
                  f"  remote_opstate: {m['remote_opstate']}",
                  f"  interval: {m['interval_ms']:g}ms",
                  f"  next CCM tx: {m['next_ccm_tx_ms']:.0f}ms"]
        for mpid, r in m["remote_meps"].items():
            lines += [f"Remote MPID {mpid}",
                      f"  state: {r['state']}" + (" rdi" if r["rdi"] else ""),
                      f"  opstate: {r['opstate']}"]
    return "\n".join(lines) + "\n"
