"""The daemon's side of vswitch/rpc.py's protocol (vsctl <-> vswitchd): an
asyncio unix-socket server that answers each request line with one reply
line, bounded as rpc.py's notes say.  Apart from the client so that vsctl,
a new process per call, does not import asyncio (a third of its start-up).
"""
import asyncio
import inspect
import json
import os
import socket
import stat

from vswitch import chunked_reply
from vswitch.rpc import (INVALID_REQUEST, MAX_DEPTH, MAX_LINE, MAX_REPLY, PARSE_ERROR,
                         SERVER_ERROR, RpcError, encode_message)

def _error(request_id, code, message):
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _depth(value):
    """How deeply `value` nests lists and objects (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


async def _answer(line, dispatch):
    """One request line -> reply dict (None for a notification without id)."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        return _error(None, PARSE_ERROR, f"parse error: {exc}")
    except RecursionError:
        return _error(None, INVALID_REQUEST, f"invalid request: JSON nested deeper than {MAX_DEPTH}")
    if _depth(request) > MAX_DEPTH:
        return _error(request.get("id") if isinstance(request, dict) else None, INVALID_REQUEST,
                      f"invalid request: JSON nested deeper than {MAX_DEPTH}")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return _error(None, INVALID_REQUEST, "invalid request: expected an object with a string 'method'")
    request_id = request.get("id")
    params = request.get("params", {})
    if not isinstance(params, dict):
        return _error(request_id, INVALID_REQUEST, "invalid request: 'params' must be an object")
    try:
        result = dispatch(request["method"], params)
        if inspect.isawaitable(result):
            result = await result
        reply = {"jsonrpc": "2.0", "id": request_id, "result": result}
        size = len(chunked_reply.dumps_fixed(reply))
        if size > MAX_REPLY:
            reply = _error(request_id, SERVER_ERROR, f"reply of {size} bytes is over the limit of "
                                                     f"{MAX_REPLY}: ask for less (fewer commands or records)")
    except RpcError as exc:
        reply = _error(request_id, exc.code, str(exc))
    except Exception as exc:
        reply = _error(request_id, SERVER_ERROR, str(exc) or type(exc).__name__)
    return reply if "id" in request else None


async def _serve_connection(reader, writer, dispatch):
    try:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial          # last line without newline, or EOF
                if not line.strip():
                    break
            except asyncio.LimitOverrunError:
                writer.write(encode_message(_error(None, INVALID_REQUEST, f"request longer than {MAX_LINE} bytes")))
                break
            if line.strip():
                reply = await _answer(line, dispatch)
                if reply is not None:
                    await chunked_reply.write_message(writer, reply, end=b"\n")
            if not line.endswith(b"\n"):
                break
    except (ConnectionError, OSError):
        pass                                # the client went away; nothing to answer
    finally:
        writer.close()




def bind_socket(path):
    """A listening socket at `path` with mode 0600; replaces a stale socket
    file but refuses to take over one that something still listens on.
    (fchmod before bind: Linux gives the file the socket inode's mode, so
    there is no window with wider permissions.)"""
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
            raise OSError(f"another server is listening on {path}")
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(path)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


async def start_server(path, dispatch):
    """Serve `dispatch(method, params)` (sync or async) on unix socket `path`."""
    sock = bind_socket(path)
    return await asyncio.start_unix_server(lambda r, w: _serve_connection(r, w, dispatch),
                                           sock=sock, limit=MAX_LINE)
