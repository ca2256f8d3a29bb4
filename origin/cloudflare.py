"""Cloudflare's zone purge API (purge by tag, or everything), through the app's httpx client.

``POST {api}/zones/{zone}/purge_cache`` with ``{"tags": [...]}`` (at most 100 per call) or
``{"purge_everything": true}``; answers ``{"success": bool, "errors": [{code, message}]}``.
Rate limiting is a 429 with ``Retry-After``: honoured when short, else reported. Server
errors and transport failures are retried with a short backoff. httpx errors are
translated here, once: the caller always gets a ``PurgeOutcome``, never an exception.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["MAX_TAGS_PER_CALL", "CloudflarePurger", "PurgeOutcome", "api_errors", "retry_after_s"]

MAX_TAGS_PER_CALL = 100
MAX_ATTEMPTS = 3
MAX_WAIT_S = 5.0  # longer Retry-After values are reported, not slept through in a request
BACKOFF_S = (0.2, 0.5)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PurgeOutcome:
    """What happened: ``ok``, ``rate_limited``, ``failed`` (or ``skipped`` by the caller)."""

    status: str
    calls: int = 0
    detail: str = ""
    retry_after_s: int | None = None
    errors: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """For the invalidation record."""
        return {
            "status": self.status,
            "calls": self.calls,
            "detail": self.detail,
            "retry_after_s": self.retry_after_s,
            "errors": list(self.errors),
        }


def retry_after_s(response: httpx.Response, now_s: float | None = None) -> int:
    """``Retry-After`` in whole seconds: delta-seconds or an HTTP date (RFC 9110); 1 if absent."""
    raw = response.headers.get("retry-after", "").strip()
    if raw.isdigit():
        return int(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError):
        return 1
    return max(0, round(when - (time.time() if now_s is None else now_s)))


def api_errors(response: httpx.Response) -> tuple[dict[str, Any], ...]:
    """Cloudflare's ``errors`` ({code, message}) of an answer, or its status and text."""
    try:
        doc = response.json()
    except ValueError:
        return ({"code": response.status_code, "message": response.text[:200]},)
    errs = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errs, list):
        return ()
    return tuple(
        {"code": e.get("code"), "message": str(e.get("message", ""))[:200]}
        for e in errs
        if isinstance(e, dict)
    )


class CloudflarePurger:
    """Purges one zone; ``sleep`` is a seam so tests do not wait."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_url: str,
        zone_id: str,
        api_token: str,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.http = http
        self.url = f"{api_url.rstrip('/')}/zones/{zone_id}/purge_cache"
        self.headers = {"Authorization": f"Bearer {api_token}"}
        self.sleep = sleep

    async def purge(self, tags: Sequence[str], *, everything: bool = False) -> PurgeOutcome:
        """Purge ``tags`` (in batches) or everything; stops at the first batch that fails."""
        bodies: list[dict[str, Any]] = (
            [{"purge_everything": True}]
            if everything
            else [
                {"tags": list(tags[i : i + MAX_TAGS_PER_CALL])}
                for i in range(0, len(tags), MAX_TAGS_PER_CALL)
            ]
        )
        calls = 0
        for body in bodies:
            outcome = await self._call(body)
            calls += outcome.calls
            if outcome.status != "ok":
                return PurgeOutcome(
                    outcome.status, calls, outcome.detail, outcome.retry_after_s, outcome.errors
                )
        return PurgeOutcome("ok", calls, f"{len(bodies)} purge request(s) accepted")

    async def _call(self, body: dict[str, Any]) -> PurgeOutcome:
        last = PurgeOutcome("failed", 0, "not attempted")
        for attempt in range(MAX_ATTEMPTS):
            try:
                response = await self.http.post(self.url, json=body, headers=self.headers)
            except httpx.HTTPError as exc:
                last = PurgeOutcome("failed", attempt + 1, f"transport: {type(exc).__name__}")
            else:
                last = self._judge(response, attempt + 1)
                final = attempt + 1 == MAX_ATTEMPTS
                if last.status == "ok" or final or not self._retryable(response, last):
                    return last
                if last.status == "rate_limited":
                    await self.sleep(float(last.retry_after_s or 1))
                    continue
            if attempt < len(BACKOFF_S):
                await self.sleep(BACKOFF_S[attempt])
        return last

    @staticmethod
    def _retryable(response: httpx.Response, outcome: PurgeOutcome) -> bool:
        if outcome.status == "rate_limited":
            return (outcome.retry_after_s or 1) <= MAX_WAIT_S
        return response.status_code >= 500

    @staticmethod
    def _judge(response: httpx.Response, calls: int) -> PurgeOutcome:
        if response.status_code == 429:
            wait = retry_after_s(response)
            return PurgeOutcome(
                "rate_limited", calls, "Cloudflare rate limit", wait, api_errors(response)
            )
        errors = api_errors(response)
        if response.status_code == 200:
            try:
                success = bool(response.json().get("success"))
            except (ValueError, AttributeError):
                success = False
            if success:
                return PurgeOutcome("ok", calls)
            return PurgeOutcome("failed", calls, "Cloudflare answered success=false", None, errors)
        return PurgeOutcome(
            "failed", calls, f"Cloudflare answered HTTP {response.status_code}", None, errors
        )
