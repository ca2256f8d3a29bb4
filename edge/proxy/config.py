"""The edge config as one process holds it: fetched with its ETag, refreshed after its
max-age in the background (stale-while-revalidate), and patched at once by pushed purges.

A 404 from the origin means "no edge config here": the edge then runs as a plain shared HTTP
cache. A failed refresh keeps the last good config (stale-if-error).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import httpx

from cache_keys.errors import CacheKeysError
from cache_keys.wire import EdgeConfig, PurgeMessage, parse_edge_config

__all__ = ["CONFIG_PATH", "ConfigHolder"]

CONFIG_PATH = "/v1/edge/config"


class ConfigHolder:
    """The current edge config, its age, and how purges patch it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        origin_url: str,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._url = origin_url + CONFIG_PATH
        self._timeout_s = timeout_s
        self._clock = clock
        self.config: EdgeConfig | None = None
        self.absent = False  # the origin answered 404: no personalization
        self.fetched_at = 0.0
        self.applied_purges: list[str] = []  # newest last, bounded
        self._refresh: asyncio.Task[None] | None = None

    @property
    def etag(self) -> str:
        return self.config.etag if self.config else ""

    async def load(self) -> EdgeConfig | None:
        """Fetch now (first use, or forced); keeps the old config when the origin fails."""
        headers = {"accept": "application/json"}
        if self.config is not None:
            headers["if-none-match"] = self.config.etag
        try:
            resp = await self._client.get(self._url, headers=headers, timeout=self._timeout_s)
        except httpx.HTTPError:
            return self.config
        if resp.status_code == 404:
            self.absent, self.config = True, None
        elif resp.status_code == 304:
            self.fetched_at = self._clock()
        elif resp.status_code == 200:
            try:
                fresh = parse_edge_config(resp.json())
            except (ValueError, CacheKeysError):
                return self.config
            self.config, self.absent, self.fetched_at = self._merge(fresh), False, self._clock()
        return self.config

    def _merge(self, fresh: EdgeConfig) -> EdgeConfig:
        """Never let a config pulled from a lagging origin undo a purge already applied."""
        if self.config is None:
            return fresh
        gens = dict(fresh.generations)
        for t, (soft, hard) in self.config.generations.items():
            cur = gens.get(t, (0, 0))
            gens[t] = (max(soft, cur[0]), max(hard, cur[1]))
        return replace(fresh, generations=gens)

    async def current(self) -> EdgeConfig | None:
        """The config to decide with: loads on first use, refreshes in the background."""
        if self.config is None and not self.absent:
            return await self.load()
        stale = self._clock() - self.fetched_at > (self.config.max_age_s if self.config else 30)
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.get_running_loop().create_task(self._background())
        return self.config

    async def _background(self) -> None:
        await self.load()

    def apply_purge(self, msg: PurgeMessage) -> None:
        """Raise generations and extend the item mask as a pushed purge says."""
        if self.config is None:
            return
        gens = dict(self.config.generations)
        for t, (soft, hard) in msg.generations.items():
            cur = gens.get(t, (0, 0))
            gens[t] = (max(soft, cur[0]), max(hard, cur[1]))
        self.config = replace(
            self.config, generations=gens, item_mask=self.config.item_mask | set(msg.mask_add)
        )
        self.applied_purges = [*self.applied_purges[-99:], msg.id]
