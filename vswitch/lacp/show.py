"""Render LacpEngine.show() as text laid out like `ovs-appctl lacp/show`."""


def _info_lines(role: str, info: dict) -> list[str]:
    return [f"  {role} sys_id: {info['sys_id']}",
            f"  {role} sys_priority: {info['sys_priority']}",
            f"  {role} port_id: {info['port_id']}",
            f"  {role} port_priority: {info['port_priority']}",
            f"  {role} key: {info['key']}",
            f"  {role} state: {' '.join(info['state'])}".rstrip()]


def render(show: dict) -> str:
    lines = [f"---- {show['name']} ----",
             f"  status: {show['status']}" + (" negotiated" if show["negotiated"] else ""),
             f"  sys_id: {show['sys_id']}",
             f"  sys_priority: {show['sys_priority']}",
             f"  aggregation key: {show['aggregation_key']}",
             f"  lacp_time: {show['lacp_time']}"]
    if show["fallback_ab"]:
        lines.append("  fallback-ab: " + ("active" if show["fallback_active"] else "standby"))
    for name, m in show["members"].items():
        lines += ["", f"member: {name}: {m['status']} "
                      f"{'attached' if m['attached'] else 'detached'}",
                  f"  port_id: {m['port_id']}",
                  f"  port_priority: {m['port_priority']}",
                  f"  may_enable: {'true' if m['may_enable'] else 'false'}",
                  ""]
        lines += _info_lines("actor", m["actor"]) + [""] + _info_lines("partner", m["partner"])
    return "\n".join(lines) + "\n"
