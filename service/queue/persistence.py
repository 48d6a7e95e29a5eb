"""What the queue's Redis keeps across a crash, shown in ``/ready`` (``info.queue_persistence``).

On Redis Streams every job exists only in Redis until it is finished. Without an append-only
file (AOF) a restart of Redis loses every job queued since its last snapshot, or all of them;
with one, how much is lost depends on ``appendfsync`` (README, "Redis durability for the
queue"). The settings are read at start and every ``REFRESH_SECONDS``: ``INFO persistence``
says whether the AOF is on, ``CONFIG GET appendfsync`` how often it reaches the disk. Managed
Redis services often refuse ``CONFIG`` (and some ``INFO``): what cannot be read is shown as
``unknown``. A Redis without an AOF is a warning in the details and, once, in the log; it never
makes the process unready, since the API still works.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from core.errors import StateBackendError
from service.backends.errors import redis_errors
from service.backends.health_log import is_outage
from service.logging import get_logger
from service.periodic import Periodic

log = get_logger("kervan.queue")

REFRESH_SECONDS = 60.0
UNKNOWN = "unknown"
NO_AOF_WARNING = (
    "the queue's Redis keeps no append-only file: a restart of Redis loses the jobs queued "
    "since its last snapshot (or all of them); set appendonly yes"
)
#: What a crash loses, by ``appendfsync`` (with the append-only file on).
LOSS = {
    "always": "nothing: each write is on disk before Redis answers it",
    "everysec": (
        "up to about 1 s of acknowledged writes if the machine fails (2 s with a slow disk); "
        "a crash of the Redis process alone normally loses nothing"
    ),
    "no": (
        "the writes the operating system has not flushed yet (about 30 s on Linux) if the "
        "machine fails; a crash of the Redis process alone loses nothing"
    ),
}
NO_AOF_LOSS = "every job queued since the last snapshot"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe(appendonly: str, appendfsync: str, snapshots: str) -> dict[str, Any]:
    """The details ``/ready`` shows for these settings (each may be ``unknown``; ``snapshots``
    is Redis's ``save`` rule, ``off`` when empty)."""
    if appendonly == "no":
        loss = "every job queued" if snapshots == "off" else NO_AOF_LOSS
        warning = NO_AOF_WARNING
    elif appendonly == "yes":
        loss, warning = LOSS.get(appendfsync, UNKNOWN), None
    else:
        loss, warning = UNKNOWN, None
    return {
        "backend": "redis",
        "appendonly": appendonly,
        "appendfsync": appendfsync,
        "snapshots": snapshots,
        "loss_on_crash": loss,
        "warning": warning,
    }


def _answers(found: Any) -> list[Any]:
    """A server's answer as a list; a cluster answers per node (a dict of dicts)."""
    if isinstance(found, dict) and found and all(isinstance(v, dict) for v in found.values()):
        return list(found.values())
    return [found]


def _weakest(values: list[str], order: tuple[str, ...]) -> str:
    """The value of the least durable node (``unknown`` when one is not known)."""
    if not values or any(v not in order for v in values):
        return UNKNOWN
    return min(values, key=order.index)


class RedisPersistence(Periodic):
    """Reads the queue Redis's persistence settings at start and every ``interval`` (on a
    cluster, of every primary: the least durable one is shown)."""

    name = "queue-persistence"

    def __init__(self, redis: Redis | RedisCluster, interval: float = REFRESH_SECONDS) -> None:
        super().__init__(interval)
        self._r: Any = redis
        self._nodes: dict[str, Any] = (
            {"target_nodes": RedisCluster.PRIMARIES} if isinstance(redis, RedisCluster) else {}
        )
        self._details: dict[str, Any] | None = None

    async def _config(self, name: str) -> list[str]:
        try:
            with redis_errors(f"CONFIG GET {name}"):
                found = await self._r.config_get(name, **self._nodes)
        except StateBackendError as error:
            # Refused (renamed or forbidden on managed services): not known, not an outage.
            if is_outage(error):
                raise
            return [UNKNOWN]
        values = []
        for answer in _answers(found):
            pairs = {_text(k): _text(v) for k, v in dict(answer).items()}
            values.append(pairs.get(name, UNKNOWN))
        return values

    async def _appendonly(self) -> str:
        try:
            with redis_errors("INFO persistence"):
                found = await self._r.info("persistence", **self._nodes)
        except StateBackendError as error:
            if is_outage(error):
                raise
            found = None
        enabled = [str(a.get("aof_enabled")) for a in _answers(found) if isinstance(a, dict)]
        if not enabled or any(e not in ("0", "1") for e in enabled):
            return _weakest(await self._config("appendonly"), ("no", "yes"))
        return "yes" if all(e == "1" for e in enabled) else "no"

    async def read(self) -> dict[str, Any]:
        """Reads the settings now (a failure to reach Redis raises and keeps the last ones)."""
        appendonly = await self._appendonly()
        appendfsync = _weakest(await self._config("appendfsync"), ("no", "everysec", "always"))
        saves = {"off" if save == "" else save for save in await self._config("save")}
        snapshots = saves.pop() if len(saves) == 1 else "differs between nodes"
        details = describe(appendonly, appendfsync, snapshots)
        before = self._details
        if details["warning"] and (before is None or before["warning"] != details["warning"]):
            log.warning(details["warning"], extra={"appendonly": appendonly})
        self._details = details
        return details

    async def step(self) -> None:
        await self.read()

    async def details(self) -> dict[str, Any]:
        """The last settings read (read now when none was read yet)."""
        if self._details is None:
            try:
                return await self.read()
            except StateBackendError as error:
                return {"backend": "redis", "error": error.message}
        return self._details


async def sql_details() -> dict[str, Any]:
    return {"backend": "sql", "loss_on_crash": "as the database's: jobs are rows in it"}
