"""Launcher for os-ken applications (os-ken's pip package has no
osken-manager): python3 osken_run.py [--OSKEN-OPTION VALUE]... APP.py...

Parses os-ken's own options, loads the apps, instantiates them and joins
their threads, as osken-manager does."""
import sys

from os_ken.lib import hub

hub.patch(thread=False)  # as osken-manager does first: eventlet-friendly sockets, sleeps, timers

from os_ken import cfg, log  # noqa: E402
from os_ken.base.app_manager import AppManager  # noqa: E402


def main(argv):
    opts, apps, i = [], [], 0
    while i < len(argv):
        if argv[i].startswith("--"):
            takes_value = "=" not in argv[i] and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            opts += argv[i:i + 1 + takes_value]
            i += 1 + takes_value
        else:
            apps.append(argv[i])
            i += 1
    cfg.CONF(args=opts, project="os_ken")
    log.init_log()
    manager = AppManager.get_instance()
    manager.load_apps(apps)
    services = manager.instantiate_apps(**manager.create_contexts())
    try:
        hub.joinall(services)
    finally:
        manager.close()


if __name__ == "__main__":
    main(sys.argv[1:])
