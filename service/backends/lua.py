"""Lua scripts shipped as package files and run with EVALSHA.

Scripts are read once with ``importlib.resources`` from ``service/lua/<name>.lua``; redis-py's
``Script`` sends EVALSHA and falls back to loading the script when the server answers NOSCRIPT
(after a restart or failover), so callers never see that case.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from service.backends.errors import redis_errors
from service.backends.redis import RedisClient
from service.backends.redis_line import RedisLine


@cache
def load_lua(name: str) -> str:
    return resources.files("service.lua").joinpath(f"{name}.lua").read_text(encoding="utf-8")


class LuaScript:
    def __init__(self, client: RedisClient, name: str) -> None:
        self.name = name
        self._script = client.register_script(load_lua(name))

    async def on_line(self, line: RedisLine, keys: list[Any], args: list[Any]) -> Any:
        """Run the script over a ``RedisLine`` (the same NOSCRIPT fallback)."""
        with redis_errors(f"script {self.name}"):
            return await line.script(self._script.sha, load_lua(self.name), keys, args)

    async def __call__(
        self, keys: list[str] | None = None, args: list[Any] | None = None, client: Any = None
    ) -> Any:
        """Run the script; pass ``client`` (a pipeline) to queue it inside a pipeline."""
        if client is not None:
            return await self._script(keys=keys or [], args=args or [], client=client)
        with redis_errors(f"script {self.name}"):
            return await self._script(keys=keys or [], args=args or [])
