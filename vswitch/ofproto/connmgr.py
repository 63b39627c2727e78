"""Per-bridge OpenFlow connection manager: listeners, active connections
with reconnect and backoff, async messages to whoever asked for them.

Design note.  Every bridge always listens on RUNDIR/BR.mgmt (a "service"
socket for ovs-ofctl and friends).  The bridge's controller targets are
"primary" connections: active ones (tcp:, unix:) are dialled and redialled
with exponential backoff (1 s doubling to 8 s); passive ones (ptcp:, punix:)
are listened on.  Listening sockets are bound synchronously, so a socket
exists as soon as the vsctl command that asked for it returns.  Role state
(one master, generation id) is shared by the bridge's connections and kept
here.  `reconcile(targets, ssl_row)` is called after every configuration
change.

ssl: and pssl: are tcp: and ptcp: wrapped in TLS with the contexts built
from the SSL row (conn/tls.py): mutual authentication, TLS 1.2 or later.  A
pssl listener accepts TCP itself and counts the connection against the caps
before the handshake, which must end within tls.HANDSHAKE_TIMEOUT; a failed
handshake is logged (as refusals are, sparingly) with the reason.  When the
SSL row changes (or its files do, seen at the next reconcile), every
ssl/pssl listener and dialler is stopped (dropping its connections) and
started again with the new contexts; without a usable SSL row they are not
started, and the log says why.
"""
import asyncio
import logging
import os
import socket
import ssl
import stat
import time

from vswitch.ofproto.conn import targets as targets_mod
from vswitch.ofproto.conn import tls
from vswitch.ofproto.conn.ofconn import OFConnection
from vswitch.ofproto.ofp.constants import OFPCR_ROLE_MASTER, OFPCR_ROLE_SLAVE
from vswitch.ofproto.ofp import OFPError

log = logging.getLogger("vswitch.connmgr")

BACKOFF_MIN, BACKOFF_MAX = 1.0, 8.0
MAX_CONNS_PER_LISTENER = 64  # OpenFlow connections one listener accepts at once
MAX_CONNS = 256  # and all of a bridge's listeners together
REFUSAL_LOG_INTERVAL = 10.0  # seconds between two log lines about refused peers
ASYNC_REASON = {"packet_in": lambda msg: msg.reason, "flow_removed": lambda msg: msg.reason,
                "port_status": lambda msg: msg.reason}


class ConnManager:
    def __init__(self, switch, rundir, clock=time.monotonic, on_change=None):
        self.switch, self.clock = switch, clock
        self.on_change = on_change or (lambda: None)
        self.conns = set()
        self.generation_id = None
        self.services = {}            # target text -> (server task or dialer task, socket)
        self.rundir = os.path.realpath(rundir)
        self._refused, self._refusal_logged_at = 0, float("-inf")
        self.ssl_config, self.tls = None, None   # tls.SSLConfig, tls.Contexts (None: unusable)
        self._ssl_state = (None, None)             # the config and its files' stat, as last applied
        self._ssl_missing_logged = set()           # ssl targets already logged as waiting for set-ssl
        self.mgmt_path = os.path.join(rundir, f"{switch.name}.mgmt")
        switch.notify = self.notify
        self._listen("mgmt", targets_mod.Target(f"punix:{self.mgmt_path}", False, "unix",
                                                path=self.mgmt_path), primary=False)

    # ------------------------------------------------------------ targets
    def reconcile(self, target_texts, ssl_row=None):
        self._set_ssl(tls.SSLConfig.from_row(ssl_row))
        wanted = set(target_texts)
        for text in list(self.services):
            if text != "mgmt" and text not in wanted:
                self._stop(text)
        for text in wanted - set(self.services):
            try:
                target = targets_mod.parse(text)
            except (targets_mod.TargetError, ValueError) as exc:
                log.error("%s: %s", self.switch.name, exc)
                continue
            if target.tls and self.tls is None:
                if text not in self._ssl_missing_logged:
                    self._ssl_missing_logged.add(text)
                    why = "it is unusable (see above)" if self.ssl_config else "none is set"
                    log.error("%s: not starting %s: it needs the SSL configuration and %s "
                              "(vsctl set-ssl PRIVKEY CERT CACERT)", self.switch.name, text, why)
                continue
            if target.active:
                task = asyncio.get_running_loop().create_task(self._dial(target, self.tls))
                self.services[text] = (task, None)
            else:
                self._listen(text, target, primary=True)

    def _set_ssl(self, config):
        """A changed SSL row: new contexts, and the ssl/pssl services restarted
        with them (reconcile starts them again)."""
        state = (config, tls.files_state(config))
        if state == self._ssl_state:
            return
        self._ssl_state = state
        self.ssl_config, self.tls = config, None
        self._ssl_missing_logged.clear()
        if config is not None:
            try:
                self.tls = tls.Contexts(config)
            except tls.TLSConfigError as exc:
                log.error("%s: the SSL configuration cannot be used: %s", self.switch.name, exc)
        for text in list(self.services):
            if text.startswith(("ssl:", "pssl:")):
                log.info("%s: SSL configuration changed, restarting %s", self.switch.name, text)
                self._stop(text)

    def _unix_path_allowed(self, path):
        """punix paths stay inside the run directory (as OVS confines them),
        and only a stale socket may be replaced: never a file of someone else."""
        real_dir = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        if real_dir != self.rundir and not real_dir.startswith(self.rundir + os.sep):
            return f"{path} is outside the run directory {self.rundir}"
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if not stat.S_ISSOCK(st.st_mode):
            return f"{path} exists and is not a socket"
        os.unlink(path)  # a stale socket of ours (or of a previous run)
        return None

    def _listen(self, key, target, primary):
        try:
            if target.kind == "unix":
                refused = self._unix_path_allowed(target.path)
                if refused:
                    log.error("%s: refusing to listen on %s: %s", self.switch.name, target.text, refused)
                    return
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(target.path)
                os.chmod(target.path, 0o600)  # whatever the umask: root's only
            else:
                family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((target.host, target.port))
            sock.listen(16)
            sock.setblocking(False)
        except OSError as exc:
            log.error("%s: cannot listen on %s: %s", self.switch.name, target.text, exc)
            return

        holder = {"conns": set(), "tasks": set()}
        name = f"{self.switch.name}<->{target.text}"

        async def serve_tls(contexts):
            loop = asyncio.get_running_loop()
            while True:
                conn_sock, addr = await loop.sock_accept(sock)
                task = loop.create_task(self._accept_tls(conn_sock, addr, name, primary,
                                                         holder["conns"], contexts))
                holder["tasks"].add(task)
                task.add_done_callback(holder["tasks"].discard)

        async def serve():
            loop = asyncio.get_running_loop()
            start = loop.create_unix_server if target.kind == "unix" else loop.create_server
            holder["server"] = await start(
                lambda: OFConnection(self, name, primary, listener=holder["conns"]), sock=sock)
            await holder["server"].serve_forever()
        task = asyncio.get_running_loop().create_task(serve_tls(self.tls) if target.tls else serve())
        self.services[key] = (task, (sock, target, holder))
        log.info("%s: listening for OpenFlow on %s", self.switch.name, target.text)

    async def _dial(self, target, contexts=None):
        backoff = BACKOFF_MIN
        name = f"{self.switch.name}->{target.text}"
        loop = asyncio.get_running_loop()

        def new_conn():
            return OFConnection(self, name, True)
        while True:
            try:
                if target.kind == "unix":
                    transport, conn = await loop.create_unix_connection(new_conn, target.path)
                elif target.tls:
                    transport, conn = await asyncio.wait_for(loop.create_connection(
                        new_conn, target.host, target.port, ssl=contexts.client,
                        ssl_handshake_timeout=tls.HANDSHAKE_TIMEOUT), 5 + tls.HANDSHAKE_TIMEOUT)
                    self._log_peer(name, transport)
                else:
                    transport, conn = await asyncio.wait_for(
                        loop.create_connection(new_conn, target.host, target.port), 5)
            except (OSError, asyncio.TimeoutError) as exc:
                if isinstance(exc, ssl.SSLError):
                    log.warning("%s: TLS handshake failed (%s), retrying in %.0f s", name,
                                tls.describe_failure(exc), backoff)
                else:
                    log.info("%s: connection failed (%s), retrying in %.0f s", name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            started = self.clock()
            await conn.finished
            if self.clock() - started > BACKOFF_MAX:
                backoff = BACKOFF_MIN
            if isinstance(conn.error, ssl.SSLError):
                # With TLS 1.3 a peer refusing our certificate says so after
                # our side of the handshake is done: at the first read.
                log.warning("%s: disconnected by a TLS error (%s), reconnecting in %.0f s", name,
                            tls.describe_failure(conn.error), backoff)
            else:
                log.info("%s: disconnected, reconnecting in %.0f s", name, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _over_caps(self, name, listener_conns):
        if len(listener_conns) >= MAX_CONNS_PER_LISTENER or len(self.conns) >= MAX_CONNS:
            self.log_refusal(f"{name}: too many OpenFlow connections "
                             f"({len(listener_conns)} on this listener, {len(self.conns)} in all), refused")
            return True
        return False

    def admit(self, conn):
        """A connection is made: False if a listener's caps refuse it
        (a pssl listener counted it before the handshake, conn.listener is None)."""
        if conn.listener is not None:
            if self._over_caps(conn.name, conn.listener):
                return False
            conn.listener.add(conn)
        self.conns.add(conn)
        sock = conn.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Requests answered with two messages (error + echo, barrier +
            # reply) would otherwise wait 40 ms for Nagle and delayed ACKs.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True

    async def _accept_tls(self, conn_sock, addr, name, primary, listener_conns, contexts):
        """A pssl connection: counted against the caps from the start, then
        the TLS handshake (bounded in time), then OpenFlow."""
        if self._over_caps(name, listener_conns):
            conn_sock.close()
            return
        marker = object()
        listener_conns.add(marker)
        try:
            loop = asyncio.get_running_loop()
            conn = OFConnection(self, name, primary)
            try:
                transport, _ = await asyncio.wait_for(loop.connect_accepted_socket(
                    lambda: conn, conn_sock, ssl=contexts.server,
                    ssl_handshake_timeout=tls.HANDSHAKE_TIMEOUT), tls.HANDSHAKE_TIMEOUT + 1)
            except (OSError, asyncio.TimeoutError) as exc:   # ssl.SSLError is an OSError
                conn_sock.close()
                self.log_refusal(f"{name}: TLS handshake with {_peer(addr)} failed: "
                                 f"{tls.describe_failure(exc)}; connection refused")
                return
            self._log_peer(f"{name} ({_peer(addr)})", transport)
            await conn.finished
        finally:
            listener_conns.discard(marker)

    @staticmethod
    def _log_peer(name, transport):
        cert = transport.get_extra_info("peercert") or {}
        subject = ", ".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)
        version = transport.get_extra_info("ssl_object").version() or "connection"
        log.info("%s: TLS %s with peer certificate %s", name, version, subject or "(no subject)")

    def log_refusal(self, message):
        """Refused peers are logged at most once per REFUSAL_LOG_INTERVAL, with a
        count of what was not logged: a flood of them must not flood the log."""
        now = self.clock()
        self._refused += 1
        if now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL:
            more = f" ({self._refused - 1} more refused since the last report)" if self._refused > 1 else ""
            log.warning("%s%s", message, more)
            self._refusal_logged_at, self._refused = now, 0

    def _stop(self, key):
        task, listen = self.services.pop(key)
        task.cancel()
        if listen:
            sock, target, holder = listen
            for pending in list(holder.get("tasks", ())):
                pending.cancel()         # TLS handshakes under way
            if "server" in holder:
                holder["server"].close()   # closes the socket it owns
            else:
                sock.close()
            if target.kind == "unix":
                try:
                    os.unlink(target.path)
                except FileNotFoundError:
                    pass
        for conn in list(self.conns):
            if key != "mgmt" and key in conn.name:
                conn.close()

    def close(self):
        for key in list(self.services):
            self._stop(key)
        for conn in list(self.conns):
            conn.close()

    # ------------------------------------------------------------ connection events
    def connected(self, conn):
        if conn.primary:
            before = self.switch.mode(), self.switch.miss_to_controller()
            self.switch.connected[id(conn)] = conn.version
            if before != (self.switch.mode(), self.switch.miss_to_controller()):
                self.on_change()

    def disconnected(self, conn):
        self.conns.discard(conn)
        if self.switch.connected.pop(id(conn), None) is not None:
            log.info("%s: controller connection closed", conn.name)
            self.on_change()

    def check_generation(self, generation_id):
        if self.generation_id is not None and \
                ((generation_id - self.generation_id) & (2**64 - 1)) >= 2**63:
            raise OFPError("ROLE_REQUEST_FAILED", "STALE")
        self.generation_id = generation_id

    def demote_others(self, master):
        for conn in self.conns:
            if conn is not master and conn.role == OFPCR_ROLE_MASTER:
                conn.role = OFPCR_ROLE_SLAVE

    # ------------------------------------------------------------ async messages
    def notify(self, kind, msg):
        reason = ASYNC_REASON[kind](msg)
        for conn in list(self.conns):
            if conn.wants(kind, reason):
                msg.version, msg.xid = conn.version, 0
                conn.send(msg)


def _peer(addr):
    host, port = addr[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
