"""Bounded busy-polling of an OpenFlow connection that is streaming requests.

Design note.  `ovs-ofctl add-flows` (and controllers that pace themselves
with barriers) send one flow-mod + barrier, wait for the barrier reply, and
only then send the next: one round trip per rule.  Going back to the event
loop after each reply puts vswitchd to sleep in epoll_wait, and the next
request then pays a wake-up (tens of us on the bench VM: IPI, leaving the
idle state, the scheduler, then the selector and transport machinery) — as
much as the daemon's own work on a rule.  So after a read that came in
soon after our previous reply (the peer is streaming), the connection keeps
reading the socket without blocking (MSG_DONTWAIT on a dup of the
transport's socket, into the connection's receive buffer) for a short
window; what arrives is handled right there, as if the transport had read
it.  The peer's own wake-up is untouched; ours is gone while it streams.

Bounds, so polling never costs an idle daemon anything and never starves
the loop:
  * Only after a read that arrived within MAX_WINDOW_S of the reply before
    it (a streaming peer); a peer that talks now and then (echo, probes,
    one flow-mod) is never polled for.  An idle daemon does not poll.
  * The window adapts to the peer: WINDOW_SLACK times the slowest recent
    gap between our reply and its next request (decaying), clamped to
    [MIN_WINDOW_S, MAX_WINDOW_S]; a window that expires empty ends the
    polling until a read shows the peer is streaming again.
  * At most TURN_BUDGET_S of inline handling per event-loop turn: then the
    connection returns to the loop (its socket is still readable, so it is
    picked up on the next turn, after every other ready callback).
  * Reading paused (budget, a flow dump being written, a peer that does not
    read its replies) or the connection closed stops the polling.
TLS connections are not polled (their bytes go through the SSL object).

A connection whose C front end is on (conn/front.py) is polled by the
front end's loop in C instead (vs_of_front_pump: read, scan, reply, again),
within the same window and budget; it hands back whatever it does not take.

Threads: runs on the event loop thread only, like the connection.
"""
import socket
import time

from vswitch.ofproto.conn.front import PUMP_CLOSED, PUMP_IDLE

MIN_WINDOW_S = 20e-6      # shortest poll window
MAX_WINDOW_S = 300e-6     # longest window; also what counts as "streaming"
WINDOW_SLACK = 3          # window = this many times the slowest recent gap
GAP_DECAY = 0.9           # how fast the remembered slowest gap shrinks
TURN_BUDGET_S = 2e-3      # inline handling per event-loop turn, then back to the loop


class BusyPoller:
    """Polls one connection's socket; see the module note."""
    __slots__ = ("sock", "replied_at", "yielded", "gap", "polls", "hits")

    def __init__(self, sock):
        self.sock = sock          # a dup of the transport's socket (closed with the connection)
        self.replied_at = None    # perf_counter() when the last read's replies had been written
        self.yielded = False      # polling gave the loop a turn (budget) while the peer streamed
        self.gap = MAX_WINDOW_S   # the slowest recent reply -> next request gap (decaying)
        self.polls = self.hits = 0

    @classmethod
    def for_transport(cls, transport):
        """A poller for a plain (unix/TCP) socket transport, else None."""
        if transport.get_extra_info("sslcontext") is not None:
            return None
        tsock = transport.get_extra_info("socket")
        if tsock is None:
            return None
        try:
            return cls(socket.socket(fileno=socket.dup(tsock.fileno())))
        except OSError:
            return None

    def close(self):
        self.sock.close()

    def streaming(self, now):
        """Did this read arrive within MAX_WINDOW_S of our last reply (or
        right after polling yielded to the loop)?"""
        if self.yielded:
            self.yielded = False
            return True
        return self.replied_at is not None and now - self.replied_at < MAX_WINDOW_S

    def _pump(self, conn, window, turn_end):
        """One run of the front end's C loop, the same bounds -> whether to
        go on polling."""
        perf = time.perf_counter
        reason, reads, gap = conn.front_pump(self.sock.fileno(), window, max(0.0, turn_end - perf()))
        self.polls += 1
        self.hits += reads
        if reads:
            self.gap = gap if gap > self.gap * GAP_DECAY else self.gap * GAP_DECAY
        if reason == PUMP_IDLE:
            self.replied_at = None        # the peer paused: back to sleeping in the loop
            return False
        if reason == PUMP_CLOSED:
            return False                  # the transport's own read reports it
        self.replied_at = done = perf()
        if not conn.may_poll():
            return False
        if done >= turn_end:
            self.yielded = True
            return False
        return True

    def run(self, conn):
        """Handle what the peer sends next without sleeping, within the
        bounds of the module note.  `conn`: its `_rbuf` receives, its
        `data_received` handles, its `may_poll()` says whether reading is
        still allowed."""
        perf = time.perf_counter
        recv_into, rbuf, size = self.sock.recv_into, conn._rbuf, len(conn._rbuf)
        start = self.replied_at = perf()
        turn_end = start + TURN_BUDGET_S
        while True:
            window = min(MAX_WINDOW_S, max(MIN_WINDOW_S, self.gap * WINDOW_SLACK))
            if conn.front_ready():
                if not self._pump(conn, window, turn_end):
                    return
                continue
            sent = self.replied_at
            deadline = sent + window
            self.polls += 1
            while True:
                try:
                    n = recv_into(rbuf, size, socket.MSG_DONTWAIT)
                    break
                except (BlockingIOError, InterruptedError):
                    now = perf()
                    if now >= deadline:
                        self.replied_at = None    # the peer paused: back to sleeping in the loop
                        return
                except OSError as exc:
                    conn.read_failed(exc)         # the transport's own read sees EOF only
                    return
            if not n:
                return                            # EOF: likewise
            now = perf()
            self.hits += 1
            gap = now - sent
            self.gap = gap if gap > self.gap * GAP_DECAY else self.gap * GAP_DECAY
            conn.data_received(bytes(rbuf[:n]))
            self.replied_at = done = perf()
            if not conn.may_poll():
                return
            if done >= turn_end:
                self.yielded = True
                return
