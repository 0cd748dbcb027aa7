"""What every outbound FHIR query of a worker process shares: the thread pool, one keep-alive session per
FHIR base, a watchdog that ends each query at its deadline, and the check of the addresses we connect to.

Why shared: a hook call without prefetch runs several queries at once. A thread pool and a TLS/TCP
connection per call cost more than a small query does; one bounded pool and pooled keep-alive
connections per process make the call cost about its slowest query.

Fork safety: gunicorn imports the app in the master and forks workers. Nothing here is created at
import time; each accessor creates its object on first use and again in a process whose pid differs
from the creator's (threads and sockets do not survive a fork).

The client's bearer token is never stored here: a session is shared by calls with different tokens,
so the token goes into each request's headers (see fhir_client).
"""
from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util.connection import create_connection

#: the same words for every refused address, whether or not anything listens there
ADDRESS_REFUSED = ("fhirServer resolves to a loopback, private, link-local or other non-public address; "
                   "only servers listed in IVIG_CDS_FHIR_SERVERS may be such (no request was sent)")

_MAX_SESSIONS = 32  # FHIR bases with an open session per process; the least recently used is closed beyond this


class AddressRefused(Exception):
    """The host resolves to an address we may not send a client's token to."""


class DeadlinePassed(Exception):
    """A query's deadline passed before its connection could be used."""


# ---- addresses --------------------------------------------------------------------------------

def is_public_address(address: str) -> bool:
    """A globally routable unicast address: not loopback, private, link-local, shared, reserved or multicast."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope id ("fe80::1%eth0") is not part of it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def public_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """getaddrinfo results for host:port, all of them public; raises AddressRefused otherwise (also when the
    name does not resolve, so that an unknown name and a private one answer alike)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefused(ADDRESS_REFUSED) from None
    if not infos or not all(is_public_address(str(info[4][0])) for info in infos):
        raise AddressRefused(ADDRESS_REFUSED)
    return infos


def refusal_for_public_only(url: str) -> str | None:
    """Why a token may not go to this URL when only public addresses are allowed, or None when it may."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return ADDRESS_REFUSED
    if not host:
        return ADDRESS_REFUSED
    try:
        public_addresses(host, port)
    except AddressRefused as exc:
        return str(exc)
    return None


# ---- the deadline watchdog ----------------------------------------------------------------------

class DeadlineScope:
    """The sockets one query uses until its deadline. At the deadline the watchdog shuts them down, so a
    thread blocked reading a server that drips bytes (or headers) wakes at once instead of reading on."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def adopt(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                raise DeadlinePassed("deadline passed")
            self._sockets.append(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: never touch TLS state from here


class _Watchdog:
    """One thread per process that expires scopes at their deadlines."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, DeadlineScope]] = []
        self._done: set[int] = set()
        self._counter = itertools.count()
        self._wake = threading.Condition()
        threading.Thread(target=self._run, name="fhir-deadlines", daemon=True).start()

    def watch(self, scope: DeadlineScope) -> int:
        with self._wake:
            ticket = next(self._counter)
            heapq.heappush(self._heap, (scope.deadline, ticket, scope))
            if self._heap[0][1] == ticket:
                self._wake.notify()
            return ticket

    def forget(self, ticket: int) -> None:
        with self._wake:
            self._done.add(ticket)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] in self._done:
                    self._done.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, ticket, scope = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._done.discard(ticket)
            scope.expire()


_local = threading.local()  # the DeadlineScope of the query this thread runs, if any


@contextmanager
def deadline_scope(deadline: float) -> Iterator[DeadlineScope]:
    """Every connection this thread uses inside the block is shut down at ``deadline`` (time.monotonic())."""
    scope = DeadlineScope(deadline)
    watchdog = _per_process("watchdog", _Watchdog)
    ticket = watchdog.watch(scope)
    previous, _local.scope = getattr(_local, "scope", None), scope
    try:
        yield scope
    finally:
        _local.scope = previous
        watchdog.forget(ticket)


# ---- connections that know their deadline and check their address ---------------------------------

class _GuardedConnection(HTTPConnection):
    """An HTTP connection that puts its socket under the current query's deadline, and (``public_only``)
    connects only to public addresses, the ones it resolved itself (no second lookup to rebind)."""

    public_only = False

    def _new_conn(self) -> socket.socket:
        if not self.public_only:
            return super()._new_conn()
        last_error: OSError | None = None
        for *_, address in public_addresses(self._dns_host, self.port):
            try:  # connect to the literal address checked above, never to a second lookup of the name
                return create_connection((str(address[0]), self.port), self.timeout,
                                         source_address=self.source_address, socket_options=self.socket_options)
            except OSError as exc:
                last_error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")

    def request(self, *args: Any, **kwargs: Any) -> None:
        scope: DeadlineScope | None = getattr(_local, "scope", None)
        if scope is not None:
            if self.sock is None:
                self.connect()
            scope.adopt(self.sock)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


def _pool_classes(public_only: bool) -> dict[str, type]:
    http_conn = type("HTTPConnection", (_GuardedConnection,), {"public_only": public_only})
    https_conn = type("HTTPSConnection", (_GuardedHTTPSConnection,), {"public_only": public_only})
    return {
        "http": type("HTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("HTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, *, public_only: bool, pool_size: int) -> None:
        self._classes = _pool_classes(public_only)
        super().__init__(pool_connections=1, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._classes


# ---- per-process objects -----------------------------------------------------------------------

_lock = threading.Lock()
_objects: dict[str, tuple[int, Any]] = {}  # name -> (pid of the creator, object)


def _per_process(name: str, create: Any) -> Any:
    pid = os.getpid()
    found = _objects.get(name)
    if found is not None and found[0] == pid:
        return found[1]
    with _lock:
        found = _objects.get(name)
        if found is None or found[0] != pid:  # none yet, or inherited across a fork: its threads are gone
            found = _objects[name] = (pid, create())
        return found[1]


def executor(max_workers: int) -> ThreadPoolExecutor:
    """The process's thread pool for FHIR queries with this many workers (one size in a running service)."""
    return _per_process(f"executor-{max_workers}",
                        lambda: ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fhir-query"))


class _Sessions:
    """A bounded, least-recently-used set of keep-alive sessions, one per (FHIR base origin, address rule)."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[tuple[str, bool, int], requests.Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, base_url: str, *, public_only: bool, pool_size: int) -> requests.Session:
        parts = urlsplit(base_url)
        key = (f"{parts.scheme}://{parts.netloc}".lower(), public_only, pool_size)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
            session = requests.Session()
            adapter = _GuardedAdapter(public_only=public_only, pool_size=pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._sessions[key] = session
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)[1].close()
            return session


def session(base_url: str, *, public_only: bool = False, pool_size: int = 6) -> requests.Session:
    """The process's keep-alive session for this FHIR server. Thread-safe to use; holds no token."""
    return _per_process("sessions", _Sessions).get(base_url, public_only=public_only, pool_size=pool_size)
