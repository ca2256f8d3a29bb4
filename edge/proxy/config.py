"""The edge config as one process holds it: fetched with its ETag, refreshed after its
max-age in the background (stale-while-revalidate), and patched at once by pushed purges.

A 404 from the origin means "no edge config here": the edge then runs as a plain shared HTTP
cache, and asks again after the default TTL (the 404 is cached like a config). A failed
refresh keeps the last good config (stale-if-error) and is retried with a backoff (1 s,
doubling, at most the TTL), so a down origin is not asked on every request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import httpx

from cache_keys.errors import CacheKeysError
from cache_keys.wire import EdgeConfig, PurgeMessage, parse_edge_config

__all__ = ["CONFIG_PATH", "DEFAULT_TTL_S", "REVISION_HEADER", "ConfigHolder"]

CONFIG_PATH = "/v1/edge/config"
# The origin's config version the served document was built from (absent on older origins).
REVISION_HEADER = "p13n-config-revision"
DEFAULT_TTL_S = 30.0  # how long a 404 ("no config here") holds; a config's own max-age wins
RETRY_MIN_S = 1.0  # first retry after a failed fetch; doubles up to the TTL


class ConfigHolder:
    """The current edge config, its age, and how purges patch it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        origin_url: str,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
        default_ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        self._client = client
        self._url = origin_url + CONFIG_PATH
        self._timeout_s = timeout_s
        self._clock = clock
        self._default_ttl_s = default_ttl_s
        self.config: EdgeConfig | None = None
        self.absent = False  # the origin answered 404: no personalization
        self.fetched_at = 0.0
        self.revision: int | None = None  # of the newest config pulled; None: origin sends none
        self.applied_purges: list[str] = []  # newest last, bounded
        self.failures = 0  # consecutive failed fetches
        self._next_at = 0.0  # when the next fetch is due (clock seconds)
        self._refresh: asyncio.Task[None] | None = None

    @property
    def etag(self) -> str:
        return self.config.etag if self.config else ""

    @property
    def ttl_s(self) -> float:
        """How long a fetched answer holds: the config's max-age, else the default TTL."""
        return float(self.config.max_age_s) if self.config else self._default_ttl_s

    def refresh_in(self) -> float:
        """Seconds until the next fetch is due (0 when it is due now)."""
        return max(0.0, self._next_at - self._clock())

    async def load(self) -> EdgeConfig | None:
        """Fetch now (first use, or forced); keeps the old config when the origin fails."""
        headers = {"accept": "application/json"}
        if self.config is not None:
            headers["if-none-match"] = self.config.etag
        try:
            resp = await self._client.get(self._url, headers=headers, timeout=self._timeout_s)
        except httpx.HTTPError:
            return self._failed()
        if resp.status_code == 404:
            self.absent, self.config, self.revision = True, None, None
        elif resp.status_code == 304 and self.config is not None:
            pass
        elif resp.status_code == 200:
            try:
                fresh = parse_edge_config(resp.json())
            except (ValueError, CacheKeysError):
                return self._failed()
            self.config, self.absent = self._merge(fresh), False
        else:
            return self._failed()
        self._note_revision(resp.headers.get(REVISION_HEADER, ""))
        self.fetched_at, self.failures = self._clock(), 0
        self._next_at = self.fetched_at + self.ttl_s
        return self.config

    def _failed(self) -> EdgeConfig | None:
        self.failures += 1
        backoff = min(self.ttl_s, RETRY_MIN_S * 2 ** min(self.failures - 1, 16))
        self._next_at = self._clock() + backoff
        return self.config

    def _note_revision(self, raw: str) -> None:
        # A pulled config carries every generation up to its revision; purges pushed since
        # are held on top (``_merge``), so the edge has applied everything up to the max.
        if raw.isdigit() and self.config is not None:
            self.revision = max(self.revision or 0, int(raw))

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
        """The config to decide with: refreshes in the background once due (after its
        max-age, a cached 404's TTL, or a failure's backoff); waits only while there has
        never been an answer (that one fetch is shared by every waiting request)."""
        due = self._clock() >= self._next_at
        if due and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.get_running_loop().create_task(self._background())
        if self.config is None and not self.absent and self.failures == 0 and self._refresh:
            await asyncio.shield(self._refresh)
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

    def note_applied(self, purge_id: str) -> None:
        """Report a pushed purge as applied (heartbeats), once all it carries is held."""
        self.applied_purges = [*self.applied_purges[-99:], purge_id]
