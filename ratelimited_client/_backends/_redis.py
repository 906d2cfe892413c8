"""``RedisBackend``: one quota shared by every process and host, decided in Redis.

Each admission is one ``EVALSHA`` of ``acquire.lua``: it reads Redis's own
clock (``TIME``), checks the bucket's shared pause and every limit (strict
sliding windows as sorted sets, token buckets as GCRA arrival times), and
either takes the units or answers how long until they fit. The caller then
sleeps locally until then: no polling loop hammers Redis. When the response
arrives, ``settle.lua`` re-dates the units to Redis's "now" (as the local
limiters do), and a pause the server imposed is written with ``pause.lua`` so
every process honours it.

Keys are ``{<prefix>:<bucket>}:…``: the braces make Redis Cluster hash one
bucket's keys to one slot, so each script touches one node. Keys expire on
their own once they cannot delay anyone.

redis-py's ``Script`` objects call by hash and reload on ``NOSCRIPT`` (a
flushed script cache, a failover), so nothing is lost there.
"""

from __future__ import annotations

import itertools
import math
import threading
import uuid
import weakref
from importlib import resources
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from .._errors import BackendUnavailableError, ConfigurationError
from .._rate import Rate, SlidingWindow, TokenBucket

if TYPE_CHECKING:
    from .._rate import LimitSpec

__all__ = ["OnUnavailable", "Place", "RedisBackend", "RemoteAdmission", "RemoteDecision"]

OnUnavailable = Literal["fail_closed", "fail_open", "local"]
_MODES: Final = ("fail_closed", "fail_open", "local")

_SCRIPTS: Final = {
    name: resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    for name in ("acquire", "settle", "pause", "learn")
}


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


# A learned limit is kept this long after it was last confirmed.
_LEARNED_TTL_MS: Final = 3_600_000


def _parse_learned(raw: Any) -> Rate | None:
    """``"<per second> <limit>/<period>s"`` → the rate; anything else → ``None``."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not isinstance(text, str) or " " not in text:
        return None
    try:
        return Rate.parse(text.split(" ", 1)[1])
    except ValueError:
        return None


class RemoteDecision(NamedTuple):
    """Private. The backend's answer: admitted (``admission``), or how long to wait;
    and the limit some process learned for the bucket, if any."""

    admission: RemoteAdmission | None
    wait: float
    learned: Rate | None


class RemoteAdmission:
    """Private. One admission taken in Redis: what settling it needs (the keys of its
    sliding windows, its units and its id)."""

    __slots__ = ("cost", "id", "windows")

    def __init__(self, windows: list[str], cost: int, ident: str) -> None:
        self.windows = windows
        self.cost = cost
        self.id = ident


class Place(NamedTuple):
    """Private. A process's head of a bucket's queue, as it asks Redis: its place in
    the line that all processes' heads share (see ``acquire.lua``)."""

    owner: str  # the throttle whose head asks (its places are one per tenant)
    tenant: str  # whose share it takes ("" for none)
    weight: float  # the tenant's weight
    priority: int
    waited: float  # seconds it has waited in its process (for promotion)
    promote_after: float | None
    held: float  # units it must leave free beside its cost (a priority reserve)
    caps: tuple[LimitSpec, ...] = ()  # the tenant's own cap inside the bucket's quota
    more: bool = False  # the owner has more of the tenant's requests waiting


# How long a head's place outlives the turn it was told, should its process be gone.
_PLACE_GRACE_US: Final = 500_000
# How late a place may be for its turn and still hold the others back by its share.
_PLACE_FRESH_US: Final = 100_000


class RedisBackend:
    """Limiter state in Redis, for one quota shared by many processes and hosts.

    Pass it as ``backend=`` to a client or transport::

        backend = RedisBackend("redis://localhost:6379/0", prefix="billing-api")
        client = RateLimitedClient(base_url=API, rate="50/minute", backend=backend)

    Every process using the same Redis, prefix, bucket key and rate shares one
    quota; decisions use Redis's clock, so the hosts' clocks may disagree.

    Args:
        url: a ``redis://`` / ``rediss://`` (TLS) / ``unix://`` URL, with user
            and password if needed (as redis-py reads them); or a redis-py
            client: ``redis.Redis`` (used by sync clients, and by async ones
            through a worker thread) or ``redis.asyncio.Redis`` (async only).
        prefix: the first part of every key; several applications can share a
            Redis without meeting.
        on_unavailable: what happens when Redis cannot be reached:
            ``"fail_closed"`` (default) raises :class:`BackendUnavailableError`
            and sends nothing; ``"fail_open"`` sends without a limit;
            ``"local"`` limits in this process at ``local_share`` of the quota.
            Either way redis-py reconnects by itself, and the next request uses
            Redis again once it answers.
        local_share: the share of each limit a process keeps to itself under
            ``on_unavailable="local"`` (e.g. ``1 / number_of_processes``).
        socket_timeout: seconds to wait for Redis before counting it unavailable.

    Costs are counted in whole units (a cost of 2.5 takes 3). Async use needs
    asyncio for redis-py's asyncio client; under trio the sync client is used
    from a worker thread.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        url: Any,
        *,
        prefix: str = "ratelimited_client",
        on_unavailable: OnUnavailable = "fail_closed",
        local_share: float = 0.5,
        socket_timeout: float = 1.0,
    ) -> None:
        try:
            import redis
            import redis.asyncio
        except ImportError:  # pragma: no cover - the extra is missing
            raise ConfigurationError(
                "backend=RedisBackend(...) needs redis-py: pip install 'ratelimited_client[redis]'"
            ) from None
        self._sync: redis.Redis | None = None
        self._given_async: redis.asyncio.Redis | None = None
        self._url: str | None = None
        if isinstance(url, str):
            if not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigurationError(
                    f"url must be a redis://, rediss:// or unix:// URL, got {url!r}"
                )
            self._url = url
        elif isinstance(url, redis.asyncio.Redis):
            self._given_async = url
        elif isinstance(url, redis.Redis):
            self._sync = url
        else:
            raise ConfigurationError(
                f"url must be a Redis URL or a redis-py client, got {type(url).__name__}"
            )
        name: object = prefix
        if not isinstance(name, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"prefix must be a non-empty string without braces, got {prefix!r}"
            )
        if on_unavailable not in _MODES:
            raise ConfigurationError(
                f"on_unavailable must be one of {', '.join(_MODES)}, got {on_unavailable!r}"
            )
        share: object = local_share
        if (
            isinstance(share, bool)
            or not isinstance(share, int | float)
            or not 0 < local_share <= 1
        ):
            raise ConfigurationError(f"local_share must be in (0, 1], got {local_share!r}")
        timeout: object = socket_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigurationError(f"socket_timeout must be > 0, got {socket_timeout!r}")
        self.prefix = prefix
        self.on_unavailable: OnUnavailable = on_unavailable
        self.local_share = float(local_share)
        self.socket_timeout = float(socket_timeout)
        self._lock = threading.Lock()
        # One asyncio client per event loop (a client's connections belong to one loop).
        self._async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._scripts: dict[tuple[int, str], Any] = {}
        self.round_trips = 0  # script calls made, for statistics and benchmarks
        # Admission ids: unique per process and call, cheaper than a uuid each time.
        self._ids = uuid.uuid4().hex[:12] + ":"
        self._counter = itertools.count()
        self._prepared: dict[
            tuple[str, tuple[LimitSpec, ...], str | None, tuple[LimitSpec, ...]],
            tuple[list[str], list[str], list[str]],
        ] = {}

    # -- where state lives ------------------------------------------------------------

    def describe(self) -> str:
        """The backend's address, without credentials (for errors and reprs)."""
        if self._url is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(self._url)
            host = parts.hostname or parts.path or "?"
            port = f":{parts.port}" if parts.port else ""
            return f"redis {parts.scheme}://{host}{port}"
        return "redis (a given client)"

    def keys(
        self, bucket: str, specs: tuple[LimitSpec, ...], tenant: str | None = None
    ) -> list[str]:
        """The pause key, the learned-limit key and one key per limit (of ``tenant``'s
        own cap, when given); one hash slot per bucket."""
        tag = f"{{{self.prefix}:{bucket}}}"
        found = [f"{tag}:pause", f"{tag}:learned"]
        scope = "" if tenant is None else f"tenant:{tenant}:"
        for spec in specs:
            rate = spec.rate
            if isinstance(spec, TokenBucket):
                burst = spec.burst or rate.limit
                found.append(f"{tag}:{scope}gcra:{rate.limit:g}/{rate.period:g}:{burst:g}")
            else:
                found.append(f"{tag}:{scope}sw:{rate.limit:g}/{rate.period:g}")
        return found

    @staticmethod
    def _spec_args(specs: tuple[LimitSpec, ...]) -> list[str]:
        args: list[str] = []
        for spec in specs:
            rate = spec.rate
            period = str(round(rate.period * 1_000_000))
            if isinstance(spec, TokenBucket):
                args += ["gcra", f"{rate.limit:g}", period, f"{spec.burst or rate.limit:g}"]
            else:
                args += ["sw", f"{rate.limit:g}", period, "0"]
        return args

    def _sync_client(self) -> Any:
        with self._lock:
            if self._sync is None:
                import redis

                assert self._url is not None  # noqa: S101 - one of the two is set
                self._sync = redis.Redis.from_url(
                    self._url,
                    socket_timeout=self.socket_timeout,
                    socket_connect_timeout=self.socket_timeout,
                )
            return self._sync

    def _async_client(self) -> Any | None:
        """redis-py's asyncio client for the running asyncio loop (``None`` under trio)."""
        if self._given_async is not None:
            return self._given_async
        import sniffio

        if sniffio.current_async_library() != "asyncio" or self._url is None:
            return None
        import asyncio

        import redis.asyncio

        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
            )
        return client

    def _script(self, client: Any, name: str) -> Any:
        key = (id(client), name)
        script = self._scripts.get(key)
        if script is None:
            script = self._scripts[key] = client.register_script(_SCRIPTS[name])
        return script

    # -- the three operations, sync and async -------------------------------------------

    def _prepare(
        self,
        bucket: str,
        specs: tuple[LimitSpec, ...],
        tenant: str | None,
        caps: tuple[LimitSpec, ...],
    ) -> tuple[list[str], list[str], list[str]]:
        """The keys, the limits' arguments and the sliding windows' keys of an
        admission on ``bucket``; with a ``tenant`` (one in the line), the tenant's own
        cap and the line's keys too (worked out once per combination)."""
        found = self._prepared.get((bucket, specs, tenant, caps))
        if found is None:
            if len(self._prepared) > 4096:
                self._prepared.clear()
            keys = self.keys(bucket, specs)
            limits = keys[2:]
            spec_args = [str(len(specs)), *self._spec_args(specs)]
            if tenant is not None:
                tag = f"{{{self.prefix}:{bucket}}}"
                own = self.keys(bucket, caps, tenant)[2:]
                limits += own
                keys += [*own, f"{tag}:vtime", f"{tag}:line", f"{tag}:finish:{tenant}"]
                spec_args += self._spec_args(caps)
            windows = [
                key
                for key, spec in zip(limits, specs + caps, strict=True)
                if isinstance(spec, SlidingWindow)
            ]
            found = (keys, spec_args, windows)
            self._prepared[(bucket, specs, tenant, caps)] = found
        return found

    def _acquire_args(
        self,
        bucket: str,
        specs: tuple[LimitSpec, ...],
        cost: float,
        now_us: int | None,
        learned: bool,
        place: Place | None,
    ) -> tuple[list[str], list[str], RemoteAdmission]:
        units = max(1, math.ceil(cost))
        if place is None:
            keys, spec_args, windows = self._prepare(bucket, specs, None, ())
            member = terms = ""
        else:
            keys, spec_args, windows = self._prepare(bucket, specs, place.tenant, place.caps)
            member = f"{place.owner}|{place.tenant}"
            promote = place.promote_after
            terms = (
                f"{float(place.weight)!r} {int(place.priority)} "
                f"{max(0, round(place.waited * 1_000_000))} "
                f"{-1 if promote is None else round(promote * 1_000_000)} {_PLACE_GRACE_US} "
                f"{math.ceil(place.held)} {1 if place.more else 0} {_PLACE_FRESH_US}"
            )
        admission = RemoteAdmission(windows, units, f"{self._ids}{next(self._counter)}")
        argv = [
            "" if now_us is None else str(now_us),
            str(units),
            admission.id,
            "take",
            "1" if learned else "0",
            spec_args[0],
            member,
            terms,
            *spec_args[1:],
        ]
        return keys, argv, admission

    @staticmethod
    def _answer(raw: Any, admission: RemoteAdmission) -> RemoteDecision:
        admitted, wait_us = int(raw[0]), float(raw[1])
        learned = _parse_learned(raw[3]) if len(raw) > 3 else None
        return RemoteDecision(admission if admitted else None, wait_us / 1_000_000, learned)

    def new_owner(self) -> str:
        """A name for one throttle's places in the buckets' lines."""
        return f"{self._ids}{next(self._counter)}"

    def acquire_sync(
        self,
        bucket: str,
        specs: tuple[LimitSpec, ...],
        cost: float,
        *,
        learned: bool = False,
        now_us: int | None = None,
        place: Place | None = None,
    ) -> RemoteDecision:
        """Take ``cost`` on every limit now, in one round trip, or say how many
        seconds until it would fit; with ``learned``, also read the limit some
        process learned for the bucket (for buckets with no configured limit).

        With a ``place``, the asking head keeps its turn in the line all processes'
        heads of the bucket share (priorities, fair shares between tenants, the
        tenant's own cap): it is admitted only after the heads ahead of it, and told
        to come back when its own slot frees."""
        keys, argv, admission = self._acquire_args(bucket, specs, cost, now_us, learned, place)
        client = self._sync_client()
        self.round_trips += 1
        raw = self._guard(lambda: self._script(client, "acquire")(keys=keys, args=argv))
        return self._answer(raw, admission)

    async def acquire(
        self,
        bucket: str,
        specs: tuple[LimitSpec, ...],
        cost: float,
        *,
        learned: bool = False,
        now_us: int | None = None,
        place: Place | None = None,
    ) -> RemoteDecision:
        """The async twin of :meth:`acquire_sync`."""
        keys, argv, admission = self._acquire_args(bucket, specs, cost, now_us, learned, place)
        raw = await self._call("acquire", keys, argv)
        return self._answer(raw, admission)

    @staticmethod
    def _settle_args(admission: RemoteAdmission, now_us: int | None) -> tuple[list[str], list[str]]:
        keys = admission.windows
        argv = ["" if now_us is None else str(now_us), str(admission.cost), admission.id, "1000"]
        return keys, argv

    def settle_sync(self, admission: RemoteAdmission, *, now_us: int | None = None) -> None:
        """Re-date the admission's units to now (its response has arrived)."""
        keys, argv = self._settle_args(admission, now_us)
        if not keys:
            return
        client = self._sync_client()
        self.round_trips += 1
        self._guard(lambda: self._script(client, "settle")(keys=keys, args=argv))

    async def settle(self, admission: RemoteAdmission, *, now_us: int | None = None) -> None:
        keys, argv = self._settle_args(admission, now_us)
        if keys:
            await self._call("settle", keys, argv)

    def pause_sync(self, bucket: str, seconds: float) -> None:
        """Pause ``bucket`` for every process for ``seconds`` (never shortens a pause)."""
        keys, argv = self.keys(bucket, ())[:1], [str(max(1, math.ceil(seconds * 1000)))]
        client = self._sync_client()
        self.round_trips += 1
        self._guard(lambda: self._script(client, "pause")(keys=keys, args=argv))

    async def pause(self, bucket: str, seconds: float) -> None:
        keys, argv = self.keys(bucket, ())[:1], [str(max(1, math.ceil(seconds * 1000)))]
        await self._call("pause", keys, argv)

    def _learn_args(self, bucket: str, rate: Rate) -> tuple[list[str], list[str]]:
        text = f"{rate.per_second!r} {rate.limit:g}/{rate.period!r}s"
        return [self.keys(bucket, ())[1]], [text, str(_LEARNED_TTL_MS)]

    def learn_sync(self, bucket: str, rate: Rate) -> Rate | None:
        """Share a limit learned from the server; returns the one now in force."""
        keys, argv = self._learn_args(bucket, rate)
        client = self._sync_client()
        self.round_trips += 1
        raw = self._guard(lambda: self._script(client, "learn")(keys=keys, args=argv))
        return _parse_learned(raw)

    async def learn(self, bucket: str, rate: Rate) -> Rate | None:
        keys, argv = self._learn_args(bucket, rate)
        return _parse_learned(await self._call("learn", keys, argv))

    async def _call(self, name: str, keys: list[str], argv: list[str]) -> Any:
        self.round_trips += 1
        client = self._async_client()
        if client is not None:
            try:
                return await self._script(client, name)(keys=keys, args=argv)
            except _redis_errors() as exc:
                raise BackendUnavailableError(self.describe(), type(exc).__name__) from None
        import anyio.to_thread

        sync = self._sync_client()
        return await anyio.to_thread.run_sync(
            lambda: self._guard(lambda: self._script(sync, name)(keys=keys, args=argv))
        )

    def _guard(self, call: Any) -> Any:
        try:
            return call()
        except _redis_errors() as exc:
            raise BackendUnavailableError(self.describe(), type(exc).__name__) from None

    # -- local fallback ---------------------------------------------------------------------

    def local_specs(self, specs: tuple[LimitSpec, ...]) -> tuple[LimitSpec, ...]:
        """The specs a process keeps to itself while Redis is away (``"local"``)."""
        shared: list[LimitSpec] = []
        for spec in specs:
            rate = spec.rate
            limit = max(1, math.floor(rate.limit * self.local_share))
            scaled = Rate(limit, rate.period)
            if isinstance(spec, TokenBucket):
                shared.append(
                    TokenBucket(
                        scaled,
                        burst=max(1, math.floor((spec.burst or rate.limit) * self.local_share)),
                    )
                )
            else:
                shared.append(SlidingWindow(scaled))
        return tuple(shared)

    async def aclose(self) -> None:
        """Close the connections this backend opened."""
        for client in list(self._async_clients.values()):
            await client.aclose()
        self._async_clients.clear()
        self.close_sync()

    def close_sync(self) -> None:
        if self._sync is not None and self._url is not None:
            self._sync.close()

    def __repr__(self) -> str:
        return (
            f"<RedisBackend {self.describe()} prefix={self.prefix!r} "
            f"on_unavailable={self.on_unavailable!r}>"
        )
