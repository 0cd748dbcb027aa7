"""The production HTTP server: gunicorn, with a threaded worker that reads each request whole on its event loop
before any thread sees it.

Why not gunicorn's own workers as they are: they read a request in the thread (or process) that serves it. A
client that dribbles its headers a byte at a time, or sends its headers and then sits on its body, holds that
thread for as long as it likes; a red-team run stopped the service for everyone with 50 such sockets and no
login. gunicorn's gthread worker (which this extends) already keeps idle kept-alive connections on its selector
loop, but it hands a new connection to a thread as soon as it is accepted and reads the request there.

Here the main thread of each worker, a selector loop, reads the request head and body without blocking, under
two deadlines: ``keepalive_seconds`` for the first byte of a request (on a new or a kept-alive connection) and
``request_read_seconds`` from that byte to the end of the body. Only a complete request reaches a thread, so
threads are spent on answers, never on waiting for a client; a slow client costs one socket and a buffer, and
the number of sockets is bounded (``max_connections`` per worker). A head over ``MAX_HEAD_BYTES`` gets 431 and a
declared body over the body limit gets 413, from the loop, before anything is buffered. Closing a connection
after its answer lingers on the loop too (gunicorn's graceful close waits up to two seconds on the socket, which
a client that never closes could use to stall the loop).

TLS is not spoken here: it ends at the proxy in front (the public URL is configured, see ``config``). gunicorn
itself believes no X-Forwarded-* header (``forwarded_allow_ips`` is empty): the peer address reaches the app as
REMOTE_ADDR, and the app alone decides which proxies' headers to believe, for its logs only (``forwarded``).

Logs are JSON lines (``jsonlog``), gunicorn's own included; the access line is the app's (``observability``),
since it knows the request id. Metrics are shared by the worker processes through files in a private folder
(``metrics``), which the arbiter is told to clean after each worker and to remove at exit.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import re
import selectors
import socket
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

from . import jsonlog, metrics
from .config import Settings
from .errors import operation_outcome

#: the largest request head (request line and header fields) read; CDS clients send a few hundred bytes
MAX_HEAD_BYTES = 64 * 1024
#: how long a closed connection's read side is drained for, so the answer is not cut by a reset (RFC 9112 9.6)
LINGER_SECONDS = 2.0
#: how often the loop looks for connections past their deadline
SWEEP_SECONDS = 0.25

_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_TRANSFER_ENCODING = re.compile(rb"^transfer-encoding[ \t]*:", re.IGNORECASE | re.MULTILINE)
_EXPECT_CONTINUE = re.compile(rb"^expect[ \t]*:[ \t]*100-continue[ \t]*\r\n", re.IGNORECASE | re.MULTILINE)
_REASONS = {413: "Content Too Large", 431: "Request Header Fields Too Large"}


@dataclass
class _Reading:
    """A request being read on the loop: what has come so far, and by when the rest must come."""

    buffer: bytearray
    deadline: float
    continued: bool = False


def refusal(status: int, diagnostics: str) -> bytes:
    """A complete HTTP/1.1 answer with an OperationOutcome, for a request refused before the app sees it."""
    body = json.dumps(operation_outcome([("too-long", diagnostics)])).encode()
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n")
    return head.encode("ascii") + body


def request_state(buffer: bytes | bytearray, max_body_bytes: int) -> str | tuple[int, str]:
    """``"more"`` while the request is incomplete, ``"complete"`` when a thread may parse it without waiting, or
    (status, reason) for one to refuse. Malformed framing counts as complete: gunicorn's parser refuses it with
    the right error, and reads nothing more to do so."""
    end = buffer.find(_HEAD_END)
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            return 431, f"the request head is larger than {MAX_HEAD_BYTES} bytes"
        return "more"
    head = bytes(buffer[:end + 2])
    received = len(buffer) - end - len(_HEAD_END)
    if _TRANSFER_ENCODING.search(head):
        if received > max_body_bytes + MAX_HEAD_BYTES:  # chunk framing and trailers on top of the body
            return 413, f"the request body is larger than {max_body_bytes} bytes"
        return "complete" if buffer.endswith(b"0\r\n\r\n") else "more"
    lengths = {value.strip() for value in _CONTENT_LENGTH.findall(head)}
    if not lengths:
        return "complete"
    if len(lengths) > 1 or not lengths.copy().pop().isdigit():
        return "complete"
    declared = int(lengths.pop())
    if declared > max_body_bytes:
        return 413, f"the request body is larger than {max_body_bytes} bytes"
    return "complete" if received >= declared else "more"


class BufferedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, reading requests on its loop (see the module docstring)."""

    #: set by :func:`worker_class` for the settings in force
    max_body_bytes: int = 1_000_000
    request_read_seconds: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading: dict[TConn, _Reading] = {}
        self._lingering: dict[socket.socket, float] = {}
        self._last_sweep = 0.0

    # --- the loop side -------------------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._start_reading(TConn(self.cfg, client_sock, client_addr, listener.getsockname()), b"")

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        """A kept-alive connection has a next request: read it on the loop, as a new one."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._start_reading(conn, b"")

    def _start_reading(self, conn: TConn, already: bytes) -> None:
        conn.sock.setblocking(False)
        now = time.monotonic()
        state = _Reading(bytearray(already), now + (self.request_read_seconds if already else self.cfg.keepalive))
        self._reading[conn] = state
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        if already:
            self._advance(conn, state)

    def _on_readable(self, conn: TConn, client: socket.socket) -> None:
        state = self._reading[conn]
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._drop(conn)
            return
        if not state.buffer:
            state.deadline = time.monotonic() + self.request_read_seconds
        state.buffer += data
        self._advance(conn, state)

    def _advance(self, conn: TConn, state: _Reading) -> None:
        verdict = request_state(state.buffer, self.max_body_bytes)
        if verdict == "more":
            if not state.continued and _EXPECT_CONTINUE.search(state.buffer, 0, state.buffer.find(_HEAD_END) + 2):
                state.continued = True  # the client waits for this before it sends the body
                self._send_quietly(conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self.poller.unregister(conn.sock)
        del self._reading[conn]
        if isinstance(verdict, tuple):
            self._send_quietly(conn.sock, refusal(*verdict))
            self.nr_conns -= 1
            self._linger(conn.sock)
            return
        buffered = bytes(state.buffer)
        if state.continued:  # answered already; gunicorn would answer it again
            buffered = _EXPECT_CONTINUE.sub(b"", buffered, count=1)
        conn.ivig_buffered = buffered
        conn.data_ready = True
        self.enqueue_req(conn)

    @staticmethod
    def _send_quietly(sock: socket.socket, data: bytes) -> None:
        with contextlib.suppress(OSError):
            sock.send(data)

    def _drop(self, conn: TConn) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self._reading.pop(conn, None)
        self.nr_conns -= 1
        conn.close()

    def _linger(self, sock: socket.socket) -> None:
        """Close after the peer has read the answer: half-close, then drain on the loop until EOF or the deadline."""
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, self._on_lingering_readable)
        except (OSError, ValueError, KeyError):
            sock.close()
            return
        self._lingering[sock] = time.monotonic() + LINGER_SECONDS

    def _on_lingering_readable(self, sock: socket.socket) -> None:
        try:
            if sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close_lingering(sock)

    def _close_lingering(self, sock: socket.socket) -> None:
        self._lingering.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(sock)
        sock.close()

    def murder_pending(self) -> None:
        """Called on every turn of the loop: also end reads and lingers past their deadlines."""
        super().murder_pending()
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_SECONDS:
            return
        self._last_sweep = now
        for conn in [c for c, state in self._reading.items() if state.deadline <= now]:
            self._drop(conn)
        for sock in [s for s, deadline in self._lingering.items() if deadline <= now]:
            self._close_lingering(sock)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        try:
            keep = (not fs.cancelled()) and fs.result() is True
        except Exception:  # noqa: BLE001 - the thread failed; the connection is done either way
            keep = False
        if not keep:
            self.nr_conns -= 1
            self._linger(conn.sock)
            return
        if self.alive:
            pipelined = conn.parser.unreader.take_buffered()
            if pipelined:  # the next request, sent before our answer: read the rest of it here too
                self._start_reading(conn, pipelined)
                return
        super().finish_request(conn, fs)

    # --- the thread side -----------------------------------------------------------------------------------

    def handle(self, conn: TConn) -> Any:
        buffered = getattr(conn, "ivig_buffered", None)
        if buffered is not None:
            conn.ivig_buffered = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(buffered)
        return super().handle(conn)


def worker_class(settings: Settings) -> type[BufferedThreadWorker]:
    """The worker class, carrying the limits in force (gunicorn takes a class as ``worker_class``)."""
    return type("BufferedThreadWorker", (BufferedThreadWorker,), {
        "max_body_bytes": settings.max_body_bytes,
        "request_read_seconds": settings.server.request_read_seconds,
    })


def gunicorn_options(settings: Settings, *, host: str, port: int, workers: int,
                     metrics_folder: Path | None = None) -> dict[str, Any]:
    """The gunicorn configuration of ``ivig-cds serve``; ``metrics_folder`` is the workers' shared metrics folder
    (metrics.use_private_folder), cleaned after each worker and removed when the arbiter exits."""
    server = settings.server
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": worker_class(settings),
        "threads": server.threads,
        "worker_connections": server.max_connections,
        "keepalive": server.keepalive_seconds,
        "timeout": 30,
        "graceful_timeout": 10,
        "limit_request_line": 4094,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        # gunicorn believes no X-Forwarded-*: the audience of a token is the configured public URL, never one built
        # from request headers; the app reads them from trusted proxies for its logs only (forwarded.py).
        "forwarded_allow_ips": "",
        # JSON lines; the access line is written by the app (the path without its query string, in which a token
        # may be sent; no Referer), so gunicorn's is off
        "accesslog": None,
        "logconfig_dict": jsonlog.logging_config(),
        **({} if metrics_folder is None else {
            "child_exit": lambda _arbiter, worker: metrics.worker_exited(worker.pid),
            "on_exit": lambda _arbiter: metrics.remove_folder(metrics_folder),
        }),
    }


def run(app: Any, settings: Settings, *, host: str, port: int, workers: int, metrics_folder: Path | None = None) -> None:
    """Serve a WSGI app under gunicorn with the service's worker class and bounds (`ivig-cds serve`, and the benchmark's
    echo, which must run on the same server to be a fair floor)."""
    from gunicorn.app.base import BaseApplication

    options = gunicorn_options(settings, host=host, port=port, workers=workers, metrics_folder=metrics_folder)

    class Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return app

    settle_start_up_objects()
    Server().run()


def settle_start_up_objects() -> None:
    """Take what start-up made (the app, the loaded knowledge, its compiled FHIRPath, the R4 models) out of the garbage
    collector's reach, before the workers fork: it lives as long as the process. Without this, every full collection
    in a worker walks all of it again, and a large request (a prefetch of 10,000 resources makes hundreds of thousands
    of objects) sets off full collections: they cost a third of such a call. It also keeps the workers from writing to
    the pages they share with the arbiter (the collector's bookkeeping would copy them)."""
    gc.collect()
    gc.freeze()
