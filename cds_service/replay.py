"""Where the JWT ids (``jti``) already seen are kept, so that a token is accepted once (auth.py).

One interface, :class:`ReplayStore`, two implementations:

* :class:`SqliteReplayStore` (the default): a SQLite file shared by the worker processes of one host. A second
  host has a file of its own, so a token replayed to it would be accepted: one host only.
* :class:`RedisReplayStore` (``redis://`` or ``rediss://`` URL): one Redis shared by every host, for a service
  run on several hosts behind a load balancer.

Both behave alike, and the same tests run on both: a ``(iss, jti)`` pair is refused while its token could still
be accepted (:class:`Replayed`); each issuer may have at most ``quota`` unexpired tokens on record, and one over
it is told when its oldest expires (:class:`OverQuota`, a 429 for that issuer only); an entry goes when its
token expires; a store that cannot be opened at start-up stops start-up, and one that fails later is
:class:`Unavailable` (a 503 with Retry-After), the next call trying it again.

``now`` is the verifier's clock in both, so expiry is the same whichever store is used; Redis is told how long
a key lives relative to that clock (never an absolute time), so a host whose clock differs from Redis's
neither keeps entries too long nor drops them early.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

#: URL schemes that select the Redis store; anything else is a SQLite file name
REDIS_SCHEMES = ("redis", "rediss")


class ReplayStoreError(Exception):
    """Base of what a replay store raises; auth.py turns each into the answer the client gets."""


class Replayed(ReplayStoreError):
    """This (iss, jti) is on record: the token was used before."""


class OverQuota(ReplayStoreError):
    """The issuer has ``quota`` unexpired tokens on record; its oldest expires in ``retry_after`` seconds."""

    def __init__(self, count: int, retry_after: int) -> None:
        super().__init__(f"{count} unexpired tokens on record")
        self.count = count
        self.retry_after = retry_after


class Unavailable(ReplayStoreError):
    """The store cannot be used now (locked, unreachable, failing); nothing was recorded."""


class ReplayStore(ABC):
    """The jti seen, per issuer, each until its token expires. Thread-safe."""

    @abstractmethod
    def remember(self, key: tuple[str, str], expires: float) -> None:
        """Record ``key`` = (iss, jti) until ``expires``; Replayed if it is on record, OverQuota if its issuer has
        its quota on record (nothing recorded), Unavailable if the store fails (nothing recorded)."""

    @abstractmethod
    def ping(self) -> None:
        """Unavailable unless the store answers now (the readiness check)."""

    @abstractmethod
    def __len__(self) -> int:
        """Unexpired entries on record, all issuers (for tests and the load test)."""


def is_redis_url(store: str) -> bool:
    return urlsplit(store).scheme in REDIS_SCHEMES


def redacted(store: str) -> str:
    """The store's name for a log line or an error: a URL without its password."""
    parts = urlsplit(store)
    if parts.scheme not in REDIS_SCHEMES or parts.password is None:
        return store
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def open_replay_store(store: str, *, quota: int, timeout: float, now: Callable[[], float], key_prefix: str) -> ReplayStore:
    """The store named by ``store``: a Redis URL, else a SQLite file (``:memory:`` = this process only).
    Unavailable if it cannot be opened: the service does not start without one."""
    if is_redis_url(store):
        return RedisReplayStore(store, quota=quota, timeout=timeout, now=now, key_prefix=key_prefix)
    return SqliteReplayStore(store, quota=quota, timeout=timeout, now=now)


# --- SQLite: the worker processes of one host ---------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (iss TEXT, jti TEXT, expires REAL, PRIMARY KEY (iss, jti));
CREATE INDEX IF NOT EXISTS seen_expires ON seen (expires);
CREATE INDEX IF NOT EXISTS seen_issuer_expires ON seen (iss, expires);
CREATE TABLE IF NOT EXISTS issuer_count (iss TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS seen_added AFTER INSERT ON seen BEGIN
    INSERT INTO issuer_count VALUES (NEW.iss, 1) ON CONFLICT (iss) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS seen_removed AFTER DELETE ON seen BEGIN
    UPDATE issuer_count SET n = n - 1 WHERE iss = OLD.iss;
END;
"""


class SqliteReplayStore(ReplayStore):
    """Kept in SQLite so that every gunicorn worker on the host sees the same pairs: a replay sent to another
    worker is still a replay. One connection under a lock. Per-issuer counts are kept by triggers, so a call
    costs the same whatever the store holds (a COUNT(*) over it did not)."""

    def __init__(self, store: str, *, quota: int, timeout: float, now: Callable[[], float]) -> None:
        self._store = store
        self._quota = quota
        self._timeout = timeout
        self._now = now
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        with self._lock:
            try:
                self._connection()  # a store that cannot be opened stops start-up
            except sqlite3.Error as exc:
                raise Unavailable(f"cannot open the replay store {store}: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self._store, timeout=self._timeout, isolation_level=None, check_same_thread=False)
            try:
                if self._store != ":memory:":
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; the file is in memory anyway
                db.executescript(_SQLITE_SCHEMA)
                db.execute("BEGIN IMMEDIATE")  # counts as the rows say (a store older than the counts has rows)
                db.execute("DELETE FROM issuer_count")
                db.execute("INSERT INTO issuer_count SELECT iss, COUNT(*) FROM seen GROUP BY iss")
                db.execute("COMMIT")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def remember(self, key: tuple[str, str], expires: float) -> None:
        iss, jti = key
        with self._lock:
            try:
                db = self._connection()
                db.execute("BEGIN IMMEDIATE")
                try:
                    now = self._now()
                    db.execute("DELETE FROM seen WHERE expires <= ?", (now,))
                    count = db.execute("SELECT n FROM issuer_count WHERE iss = ?", (iss,)).fetchone()
                    if count is not None and count[0] >= self._quota:
                        oldest = db.execute("SELECT MIN(expires) FROM seen WHERE iss = ?", (iss,)).fetchone()[0]
                        raise OverQuota(count[0], max(1, math.ceil(oldest - now)))
                    db.execute("INSERT INTO seen VALUES (?, ?, ?)", (iss, jti, expires))
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError:
                raise Replayed("on record") from None
            except sqlite3.Error as exc:
                self._close()  # reopened by the next call: a store replaced or repaired meanwhile is used again
                raise Unavailable(f"replay store {self._store} failed: {exc}") from None

    def ping(self) -> None:
        with self._lock:
            try:
                self._connection().execute("SELECT 1 FROM issuer_count LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                self._close()
                raise Unavailable(f"replay store {self._store} failed: {exc}") from None

    def _close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT COUNT(*) FROM seen WHERE expires > ?", (self._now(),)).fetchone()[0]


# --- Redis: every host ------------------------------------------------------------------------------------

#: One issuer's record is one sorted set (member jti, score its expiry), changed by this script alone, which Redis
#: runs atomically: expired entries go, a jti on record is a replay, a full set is over quota (with its oldest
#: expiry), else the jti is added and the set lives until its last entry expires (a TTL relative to our clock).
#: One key per call, so it also runs on a Redis Cluster.
_REMEMBER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    return {1, '0'}
end
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then
    return {2, redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2], n}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((last - tonumber(ARGV[3])) * 1000)))
return {0, '0'}
"""


class RedisReplayStore(ReplayStore):
    """Kept in one Redis that every host uses: a token replayed to another host is still a replay. redis-py's
    client is thread-safe and reopens its pooled connections after a fork (gunicorn) and after a failure."""

    def __init__(self, url: str, *, quota: int, timeout: float, now: Callable[[], float], key_prefix: str) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._name = redacted(url)
        self._quota = quota
        self._now = now
        self._prefix = key_prefix
        try:
            # One immediate retry: a pooled connection that Redis closed (a restart) is replaced on the same call;
            # no backoff, since the caller is an EHR waiting for cards.
            self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                               retry=Retry(NoBackoff(), 1), decode_responses=True)
            self._script = self._redis.register_script(_REMEMBER)
            self._redis.ping()  # a store that cannot be reached stops start-up
        except (*self._errors, ValueError) as exc:
            raise Unavailable(f"cannot open the replay store {self._name}: {type(exc).__name__}") from None

    def key(self, iss: str) -> str:
        return self._prefix + iss

    def remember(self, key: tuple[str, str], expires: float) -> None:
        iss, jti = key
        now = self._now()
        try:
            verdict, value, *count = self._script(keys=[self.key(iss)], args=[jti, repr(expires), repr(now), self._quota])
        except self._errors as exc:
            raise Unavailable(f"replay store {self._name} failed: {type(exc).__name__}: {exc}") from None
        if int(verdict) == 1:
            raise Replayed("on record")
        if int(verdict) == 2:
            raise OverQuota(int(count[0]), max(1, math.ceil(float(value) - now)))

    def ping(self) -> None:
        try:
            self._redis.ping()
        except self._errors as exc:
            raise Unavailable(f"replay store {self._name} failed: {type(exc).__name__}") from None

    def __len__(self) -> int:
        now = repr(self._now())
        return sum(int(self._redis.zcount(key, f"({now}", "+inf")) for key in self._redis.scan_iter(match=self._prefix + "*"))
