"""The edge config in Workers KV: the origin writes it through Cloudflare's REST API.

The Worker reads key ``edge-config`` from its ``EDGE_CONFIG`` KV binding on an isolate's cold
start, so its first request need not wait for the origin (and has the generations and item
mask even when the origin is down). ``KVWriter`` is the API client:

    PUT {api}/accounts/{account}/storage/kv/namespaces/{namespace}/bulk
    [{"key": ..., "value": ..., "expiration_ttl": ...}, ...]

at most 10,000 pairs and 100 MB per call (batched here), answered with
``{"success": bool, "errors": [{code, message}], "result": {"unsuccessful_keys": [...]}}``.
429 and 5xx are retried, honouring ``Retry-After`` (a longer wait than ``max_wait_s`` is an
error, not a stall); other statuses, ``success: false`` and unwritten keys raise ``KVError``
with Cloudflare's codes. httpx errors are translated here, once.

``EdgeConfigPublisher`` keeps the key current: it compares the snapshot's config ETag with
the last one written every ``check_s`` (so a purge or an experiment change goes out at once)
and rewrites the same document every ``every_s`` (its ``generated_at_ms`` is how the Worker
judges the document's age: an old one is never fresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from origin.cloudflare import api_errors, retry_after_s
from origin.snapshot import SnapshotHolder, edge_config
from origin.state import AppState

__all__ = [
    "EDGE_CONFIG_KEY",
    "MAX_BYTES_PER_CALL",
    "MAX_PAIRS_PER_CALL",
    "EdgeConfigPublisher",
    "KVError",
    "KVWriter",
    "publisher_for",
]

LOG = logging.getLogger("p13n.origin.kv")
EDGE_CONFIG_KEY = "edge-config"  # edge/worker.py reads this key
MAX_PAIRS_PER_CALL = 10_000
MAX_BYTES_PER_CALL = 100 * 1024 * 1024
Sleep = Callable[[float], Awaitable[None]]


class KVError(Exception):
    """A KV write failed; ``status`` 0 when Cloudflare never answered."""

    def __init__(self, message: str, status: int = 0, errors: tuple[dict[str, Any], ...] = ()):
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        super().__init__(f"{message} ({detail})" if detail else message)
        self.status = status
        self.errors = errors


def batches(pairs: list[dict[str, Any]], max_pairs: int, max_bytes: int) -> list[list[Any]]:
    """Split ``pairs`` into request bodies within both limits (a pair over the limit alone)."""
    out: list[list[Any]] = [[]]
    size = 2  # the JSON array's brackets
    for pair in pairs:
        n = len(json.dumps(pair, separators=(",", ":")).encode()) + 1
        if out[-1] and (len(out[-1]) >= max_pairs or size + n > max_bytes):
            out.append([])
            size = 2
        out[-1].append(pair)
        size += n
    return [b for b in out if b]


@dataclass
class KVWriter:
    """Writes key-value pairs to one namespace; ``sleep`` is a seam so tests do not wait."""

    http: httpx.AsyncClient
    api_url: str
    account_id: str
    namespace_id: str
    api_token: str
    sleep: Sleep = asyncio.sleep
    max_attempts: int = 4
    max_wait_s: float = 30.0
    max_pairs: int = MAX_PAIRS_PER_CALL
    max_bytes: int = MAX_BYTES_PER_CALL
    backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0)

    @property
    def url(self) -> str:
        """The bulk-write endpoint."""
        return (
            f"{self.api_url.rstrip('/')}/accounts/{self.account_id}"
            f"/storage/kv/namespaces/{self.namespace_id}/bulk"
        )

    async def put_many(self, values: Mapping[str, str], *, expiration_ttl_s: int = 0) -> int:
        """Write every pair (batched); returns the calls made; raises ``KVError``."""
        pairs: list[dict[str, Any]] = [{"key": k, "value": v} for k, v in values.items()]
        if expiration_ttl_s:
            for p in pairs:
                p["expiration_ttl"] = expiration_ttl_s
        calls = 0
        for body in batches(pairs, self.max_pairs, self.max_bytes):
            calls += await self._put(body)
        return calls

    async def _put(self, body: list[Any]) -> int:
        headers = {"Authorization": f"Bearer {self.api_token}"}
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await self.http.put(self.url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                if attempt == self.max_attempts:
                    raise KVError(f"KV write: transport error {type(exc).__name__}") from exc
                await self.sleep(self.backoff_s[min(attempt, len(self.backoff_s)) - 1])
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                wait = float(retry_after_s(response)) if status == 429 else 0.0
                wait = wait or self.backoff_s[min(attempt, len(self.backoff_s)) - 1]
                if attempt == self.max_attempts or wait > self.max_wait_s:
                    raise KVError(
                        f"KV write: HTTP {status} after {attempt} attempt(s)"
                        + (f", Retry-After {wait:g} s" if status == 429 else ""),
                        status,
                        api_errors(response),
                    )
                await self.sleep(wait)
                continue
            self._judge(response)
            return attempt
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _judge(response: httpx.Response) -> None:
        status = response.status_code
        if status != 200:
            raise KVError(f"KV write: HTTP {status}", status, api_errors(response))
        try:
            doc = response.json()
        except ValueError as exc:
            raise KVError("KV write: the answer is not JSON", status) from exc
        if not isinstance(doc, dict) or doc.get("success") is not True:
            raise KVError(
                "KV write: Cloudflare answered success=false", status, api_errors(response)
            )
        result = doc.get("result") or {}
        failed = result.get("unsuccessful_keys") if isinstance(result, dict) else None
        if failed:
            raise KVError(f"KV write: keys not written: {sorted(map(str, failed))[:10]}", status)


@dataclass
class EdgeConfigPublisher:
    """Keeps ``edge-config`` in KV equal to the snapshot's edge config."""

    writer: KVWriter
    snapshot: SnapshotHolder
    max_age_s: int
    clock: Callable[[], float]
    check_s: float
    every_s: float
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    published_etag: str = ""
    published_at_s: float = 0.0
    last_error: str = ""
    checks: int = 0  # how many checks ran (tests wait on it instead of sleeping)

    async def publish_if_due(self) -> bool:
        """Write the config when it changed or ``every_s`` passed; True when written."""
        snap = self.snapshot.current
        if not snap.loaded:
            return False  # never publish the empty start-up snapshot over a good document
        now_s = self.clock()
        etag, doc = edge_config(snap, max_age_s=self.max_age_s, now_ms=int(now_s * 1000))
        if etag == self.published_etag and now_s - self.published_at_s < self.every_s:
            return False
        await self.writer.put_many({EDGE_CONFIG_KEY: json.dumps(doc, separators=(",", ":"))})
        self.published_etag, self.published_at_s, self.last_error = etag, now_s, ""
        return True

    async def run(self) -> None:
        """Publish until ``stop`` is set; a failure is logged and retried at the next check."""
        while not self.stop.is_set():
            try:
                if await self.publish_if_due():
                    LOG.info("edge config %s published to Workers KV", self.published_etag)
            except KVError as exc:
                if str(exc) != self.last_error:  # once per distinct error, not every check
                    LOG.warning("edge config not published to Workers KV: %s", exc)
                self.last_error = str(exc)
            self.checks += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.check_s)


def publisher_for(state: AppState) -> EdgeConfigPublisher | None:
    """The publisher the settings ask for (account, namespace and token set), else None."""
    s = state.settings
    if not (s.cloudflare_account_id and s.cloudflare_kv_namespace_id and s.cloudflare_api_token):
        return None
    writer = KVWriter(
        state.http,
        api_url=s.cloudflare_api_url,
        account_id=s.cloudflare_account_id,
        namespace_id=s.cloudflare_kv_namespace_id,
        api_token=s.cloudflare_api_token,
    )
    return EdgeConfigPublisher(
        writer,
        state.snapshot,
        max_age_s=s.edge_config_max_age_s,
        clock=state.clock,
        check_s=s.kv_publish_check_ms / 1000,
        every_s=s.kv_publish_every_s,
    )
