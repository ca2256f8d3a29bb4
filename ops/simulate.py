"""``p13n simulate``: shoppers, bots, a merchandiser and an experiment, through the edge.

Per visit a shopper asks the edge for the home rail (its cookies, set by the edge and the
origin, kept in the shopper's jar), then sends events to the collector through the edge:
views, add-to-cart, purchases (a view -> cart -> purchase funnel over Zipf-popular items in
the shopper's favourite categories). The ``boost`` arm of the running experiment converts
better (a true effect the results should find). Bots come without cookies at a high rate
and send nothing. A known number of malformed events is injected, so the dead-letter count
can be checked exactly. Mid-run the merchandiser marks a popular item out of stock (a hard
purge by itself), pushes a soft purge of a category, and a hard purge of another sku; the
time until no edge answer holds the sku is measured.

Transient answers (503, 429 with ``Retry-After``) of the collector and the admin API are
retried (``ops.traffic.send``). When the traffic window ends, visits still in flight get
``DRAIN_S`` to finish and are then cancelled and awaited, all before the HTTP client closes.
The ``Run`` is filled as the run goes, so whatever stops it (an error, Ctrl-C) leaves a
summary to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from ops.shop import Shopper, World
from ops.stack import StackInfo
from ops.traffic import LoadMeter, LoadVerdict, send

__all__ = ["EXPERIMENT", "Run", "Simulator"]

EXPERIMENT = "rail-algo"
BOT_SHARE = 0.12
MALFORMED_SHARE = 0.01
ORIGIN_SAMPLE = 0.05
BOOST_EFFECT = 1.5  # the boost arm's purchase propensity, relative to control
DRAIN_S = 15.0  # in-flight visits get this long after the window, then are cancelled


@dataclass
class Run:
    """What one simulation saw, client-side."""

    tiers: Counter[str] = field(default_factory=Counter)
    edge_ms: dict[str, list[float]] = field(default_factory=dict)
    origin_ms: list[float] = field(default_factory=list)
    events_sent: int = 0
    malformed_sent: int = 0
    malformed_rejected: int = 0
    bot_requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    purges: dict[str, float] = field(default_factory=dict)  # name -> ms until gone at edge
    started: float = field(default_factory=time.monotonic)
    retries: Counter[str] = field(default_factory=Counter)  # by status: "429", "503"
    cancelled: int = 0  # visits still in flight after the drain, cancelled
    load: LoadVerdict | None = None
    interrupted: str = ""  # why the run ended early ("" when it ran its course)

    def record(self, tier: str, ms: float) -> None:
        self.tiers[tier] += 1
        self.edge_ms.setdefault(tier, []).append(ms)

    @property
    def edge_answers(self) -> int:
        return sum(self.tiers.values())


def _tier(cache_status: str) -> str:
    return cache_status.rsplit("detail=", 1)[-1].split(";", maxsplit=1)[0].strip() or "unknown"


def _absorb_cookies(shopper: Shopper, response: httpx.Response) -> None:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        shopper.cookies[name.strip()] = rest.split(";", 1)[0]


@dataclass
class Simulator:
    """Drives one run against a running stack."""

    info: StackInfo
    world: World = field(default_factory=World)
    rate_per_s: float = 40.0
    duration_s: float = 60.0
    concurrency: int = 48
    progress: bool = True
    run: Run = field(default_factory=Run)
    # Without a terminal: the last tenth of the run a progress line was printed for.
    printed_tenth: int = field(default=-1, init=False)

    async def _send(
        self, http: httpx.AsyncClient, method: str, url: str, **kw: Any
    ) -> httpx.Response:
        return await send(http, method, url, self.run.retries, **kw)

    def _admin(self, role: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.info.tokens[role]}"}

    async def setup(self, http: httpx.AsyncClient) -> None:
        """Load the catalog and start the experiment (idempotent across runs)."""
        lines = "\n".join(json.dumps(row) for row in self.world.catalog)
        r = await self._send(
            http,
            "POST",
            self.info.origin_url + "/v1/admin/catalog",
            content=lines,
            headers={**self._admin("merchandiser"), "content-type": "application/x-ndjson"},
        )
        r.raise_for_status()
        exp = {
            "key": EXPERIMENT,
            "name": "Home rail: boost recent categories",
            "variations": [
                {"name": "control"},
                {"name": "boost", "weights": {"category_boost": 0.6}},
            ],
            "weights": [0.5, 0.5],
            "coverage": 1.0,
            "routes": ["home"],
        }
        base = self.info.origin_url + "/v1/admin/experiments"
        r = await self._send(http, "POST", base, json=exp, headers=self._admin("experimenter"))
        if r.status_code not in (201, 409):
            raise RuntimeError(f"creating the experiment failed: {r.status_code} {r.text}")
        r = await self._send(
            http, "POST", f"{base}/{EXPERIMENT}/start", headers=self._admin("experimenter")
        )
        if r.status_code not in (200, 409):
            raise RuntimeError(f"starting the experiment failed: {r.status_code} {r.text}")

    # -- visits ---------------------------------------------------------------------------
    async def _rail(self, http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
        started = time.perf_counter()
        r = await http.get(self.info.edge_url + "/p13n/v1/rail/home?k=12", headers=headers)
        ms = (time.perf_counter() - started) * 1000
        if r.status_code != 200:
            self.run.errors[f"edge {r.status_code}"] += 1
        else:
            self.run.record(_tier(r.headers.get("cache-status", "")), ms)
        return r

    async def bot_visit(self, http: httpx.AsyncClient) -> None:
        self.run.bot_requests += 1
        await self._rail(http, {"user-agent": "Mozilla/5.0 (compatible; Examplebot/2.1)"})

    async def shopper_visit(self, http: httpx.AsyncClient, shopper: Shopper) -> None:
        jar = "; ".join(f"{k}={v}" for k, v in shopper.cookies.items())
        r = await self._rail(http, {"cookie": jar} if jar else {})
        if r.status_code != 200:
            return
        _absorb_cookies(shopper, r)
        answer = r.json()
        shopper.variants = answer.get("variants", {})
        sid = shopper.cookies.get("p13n_sid")
        if sid is None:
            return
        shown = [i["item"] for i in answer.get("items", [])]
        await self._events(http, shopper, sid, shown)
        if self.world.rng.random() < ORIGIN_SAMPLE:
            await self._origin_call(http, sid)

    async def _origin_call(self, http: httpx.AsyncClient, sid: str) -> None:
        started = time.perf_counter()
        r = await http.get(
            self.info.origin_url + "/v1/recommendations",
            params={"user": sid, "route": "home", "k": 12},
        )
        if r.status_code == 200:
            self.run.origin_ms.append((time.perf_counter() - started) * 1000)
        else:
            self.run.errors[f"origin {r.status_code}"] += 1

    def _funnel(self, shopper: Shopper, sid: str, shown: list[str]) -> list[dict[str, Any]]:
        rng, now = self.world.rng, int(time.time() * 1000)
        session = f"s-{sid[:6]}-{now // 1_800_000}"

        def event(kind: str, item: str, **extra: Any) -> dict[str, Any]:
            return {
                "v": 1,
                "event_id": secrets.token_hex(12),
                "type": kind,
                "user": sid,
                "item": item,
                "category": self.world.category(item),
                "ts": now,
                "session": session,
                **extra,
            }

        out = []
        for _ in range(rng.randint(1, 3)):
            item = (
                rng.choice(shown) if shown and rng.random() < 0.5 else self.world.pick_item(shopper)
            )
            out.append(event("view", item, price=self.world.price(item)))
            if rng.random() < 0.3:
                shopper.cart.append(item)
                out.append(event("add_to_cart", item, price=self.world.price(item), qty=1))
        boost = BOOST_EFFECT if shopper.variants.get(EXPERIMENT) == "boost" else 1.0
        if shopper.cart and rng.random() < 0.18 * boost:
            for item in shopper.cart:
                out.append(event("purchase", item, price=self.world.price(item), qty=1))
            shopper.cart.clear()
        if rng.random() < MALFORMED_SHARE:
            out.append({**event("view", shown[0] if shown else "SKU-0000"), "type": "teleport"})
        return out

    async def _events(
        self, http: httpx.AsyncClient, shopper: Shopper, sid: str, shown: list[str]
    ) -> None:
        batch = self._funnel(shopper, sid, shown)
        r = await self._send(http, "POST", self.info.edge_url + "/v1/events",
                             json={"events": batch})  # fmt: skip
        if r.status_code != 202:
            self.run.errors[f"collector {r.status_code}"] += 1
            return
        # Counted once accepted: a batch refused (429 after retries) reached no DLQ.
        self.run.events_sent += len(batch)
        self.run.malformed_sent += sum(1 for e in batch if e["type"] == "teleport")
        self.run.malformed_rejected += int(r.json().get("rejected", 0))

    # -- the merchandiser --------------------------------------------------------------------
    async def _gone_at_edge(
        self, http: httpx.AsyncClient, sku: str, timeout_s: float, started: float
    ) -> float:
        """Ms from ``started`` (``perf_counter``, taken before the admin call) until no
        sampled edge answer holds ``sku`` (inf on timeout)."""
        probes = [s for s in self.world.people[:400] if s.cookies][:8]
        while time.perf_counter() - started < timeout_s:
            answers = await asyncio.gather(
                *(
                    http.get(
                        self.info.edge_url + "/p13n/v1/rail/home?k=12",
                        headers={"cookie": "; ".join(f"{k}={v}" for k, v in p.cookies.items())},
                    )
                    for p in probes
                ),
                return_exceptions=True,
            )
            if all(
                isinstance(a, httpx.Response)
                and a.status_code == 200
                and sku not in {i["item"] for i in a.json()["items"]}
                for a in answers
            ):
                return (time.perf_counter() - started) * 1000
            await asyncio.sleep(0.01)
        return float("inf")

    async def _popular_sku(self, http: httpx.AsyncClient, exclude: set[str]) -> str:
        seen: Counter[str] = Counter()
        for p in [s for s in self.world.people[:400] if s.cookies][:8]:
            r = await http.get(
                self.info.edge_url + "/p13n/v1/rail/home?k=12",
                headers={"cookie": "; ".join(f"{k}={v}" for k, v in p.cookies.items())},
            )
            if r.status_code == 200:
                seen.update(i["item"] for i in r.json()["items"])
        for sku, _ in seen.most_common():
            if sku not in exclude:
                return sku
        return self.world.catalog[0]["sku"]  # type: ignore[return-value]

    async def merchandiser(self, http: httpx.AsyncClient) -> None:
        """Stock-out (hard purge by itself), soft purge of a category, hard purge of a sku."""
        await asyncio.sleep(self.duration_s * 0.35)
        sku = await self._popular_sku(http, set())
        entry = next(row for row in self.world.catalog if row["sku"] == sku)
        started = time.perf_counter()
        r = await self._send(
            http,
            "PUT",
            f"{self.info.origin_url}/v1/admin/catalog/{sku}",
            json={**entry, "stock": 0},
            headers=self._admin("merchandiser"),
        )
        r.raise_for_status()
        self.run.purges[f"stock-out {sku}"] = await self._gone_at_edge(http, sku, 10, started)
        await asyncio.sleep(self.duration_s * 0.2)
        await self._invalidate(http, [f"cat:{self.world.category(sku)}"], "soft")
        await asyncio.sleep(self.duration_s * 0.2)
        other = await self._popular_sku(http, {sku})
        started = time.perf_counter()
        await self._invalidate(http, [f"sku:{other}"], "hard")
        self.run.purges[f"hard purge {other}"] = await self._gone_at_edge(http, other, 10, started)

    async def _invalidate(self, http: httpx.AsyncClient, tags: list[str], mode: str) -> None:
        r = await self._send(
            http,
            "POST",
            self.info.origin_url + "/v1/admin/invalidations",
            json={"tags": tags, "mode": mode},
            headers=self._admin("merchandiser"),
        )
        r.raise_for_status()

    # -- the run ---------------------------------------------------------------------------
    async def traffic(self, http: httpx.AsyncClient) -> None:
        """Visits at ``rate_per_s`` for ``duration_s``, at most ``concurrency`` at once; then
        the in-flight ones drain (``DRAIN_S``) or are cancelled, and awaited either way."""
        gate = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        interval, deadline = 1 / self.rate_per_s, time.monotonic() + self.duration_s
        next_at, last_report = time.monotonic(), 0.0
        meter = LoadMeter(self.rate_per_s)

        async def one() -> None:
            async with gate:
                try:
                    if self.world.rng.random() < BOT_SHARE:
                        await self.bot_visit(http)
                    else:
                        await self.shopper_visit(http, self.world.pick_shopper())
                except httpx.HTTPError as exc:
                    self.run.errors[type(exc).__name__] += 1

        try:
            while (now := time.monotonic()) < deadline:
                if now >= next_at:
                    task = asyncio.create_task(one())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    meter.visits += 1
                    next_at += interval
                if now - last_report >= 1:
                    last_report = now
                    self._progress(1 - (deadline - now) / self.duration_s)
                await asyncio.sleep(max(0.0, min(next_at - time.monotonic(), 0.05)))
        finally:
            self.run.load = meter.verdict()  # over the traffic window, however it ended
            await self._drain(tasks)
        self._progress(1.0, final=True)

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        """Let in-flight visits finish for ``DRAIN_S``; cancel the rest and await them all, so
        none outlives the client it uses (and none leaves an exception unretrieved)."""
        pending = set(tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=DRAIN_S)
        for task in pending:
            task.cancel()
        self.run.cancelled += len(pending)
        await asyncio.gather(*tasks, return_exceptions=True)

    def _progress(self, fraction: float, final: bool = False) -> None:
        if not self.progress:
            return
        width, r = 30, self.run
        done = int(width * min(fraction, 1.0))
        hits = r.tiers["hit"] + r.tiers["stale"]
        ratio = hits / r.edge_answers if r.edge_answers else 0.0
        line = (
            f"[{'#' * done}{'.' * (width - done)}] {fraction * 100:3.0f}% "
            f"answers={r.edge_answers} hit+stale={ratio:.0%} events={r.events_sent}"
        )
        if sys.stderr.isatty():
            print("\r" + line, end="\n" if final else "", file=sys.stderr, flush=True)
            return
        # A log or a pipe gets one line per tenth of the run crossed, however the once-a-
        # second reports fall (not only when one lands on an exact multiple of 10 %).
        tenth = 10 if final else min(int(fraction * 10), 9)
        if tenth > self.printed_tenth:
            self.printed_tenth = tenth
            print(line, file=sys.stderr, flush=True)

    async def main(self) -> Run:
        """Set up, then traffic and the merchandiser side by side; both are finished or
        cancelled, and awaited, before the client closes."""
        limits = httpx.Limits(max_connections=self.concurrency + 16)
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:
            await self.setup(http)
            merch = asyncio.create_task(self._merchandise(http))
            try:
                await self.traffic(http)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(merch), timeout=30)
            finally:
                merch.cancel()
                await asyncio.gather(merch, return_exceptions=True)
        return self.run

    async def _merchandise(self, http: httpx.AsyncClient) -> None:
        """The merchandiser; a failed admin call is one of the run's errors, not its end."""
        try:
            await self.merchandiser(http)
        except (httpx.HTTPError, RuntimeError, StopIteration, KeyError, ValueError) as exc:
            self.run.errors[f"merchandiser {type(exc).__name__}"] += 1
