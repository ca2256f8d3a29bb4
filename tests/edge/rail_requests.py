"""Rail requests as the edge tests make them: configs, cookies, and the reply read back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cache_keys.segments import hash_segment, parse_hseg
from cache_keys.tokens import sign_segment
from cache_keys.wire import SEGMENT_COOKIE, SHOPPER_COOKIE
from tests.support.edge import KEYRING
from tests.support.worker import WorkerHarness

SHOP = "https://shop.test"
HSEG = hash_segment("returning|grocery|mid", b"standin-segment-key")
SHOPPER = "q1w2e3r4t5y6u7i8o9p0aa"


@dataclass
class Reply:
    """A rail reply: status, headers in order, body."""

    status: int
    headers: list[tuple[str, str]]
    body: str
    pending: int

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def cookies(self) -> dict[str, str]:
        out = {}
        for k, v in self.headers:
            if k == "set-cookie":
                name, _, rest = v.partition("=")
                out[name] = rest.split(";")[0]
        return out

    @property
    def detail(self) -> str:
        status = self.header("cache-status") or ""
        m = re.search(r"detail=([a-z-]+)", status)
        assert m, status
        return m.group(1)

    @property
    def fault(self) -> str:
        """What fault (beside the origin's) shaped the answer: ``cache-error``, ``core-error``."""
        status = self.header("cache-status") or ""
        m = re.search(r"detail=[a-z-]+/([a-z-]+)", status)
        return m.group(1) if m else ""

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def items(self) -> list[str]:
        return [i["item"] for i in self.json["items"]]


def config_doc(**overrides: Any) -> dict[str, Any]:
    doc = {
        "v": 1,
        "etag": '"cfg-1"',
        "generated_at_ms": 0,
        "max_age_s": 30,
        "routes": {
            "home": {"max_age_s": 60, "swr_s": 300, "sie_s": 3600, "k": 5, "category_cap": 2},
            "buy-again": {"personal": True, "k": 3, "origin_budget_ms": 1500},
        },
        "default_items": [{"item": "DEFAULT-1", "score": 1.0, "category": "gifts"}],
    }
    doc.update(overrides)
    return doc


def experiment(key: str = "rail-algo", **overrides: Any) -> dict[str, Any]:
    exp = {
        "key": key,
        "seed": key,
        "status": "running",
        "routes": ["home", "buy-again"],
        "variations": [{"name": "control"}, {"name": "trending", "list_variant": "trending"}],
        "weights": [0.0, 1.0],
    }
    exp.update(overrides)
    return exp


def shopper_cookie(shopper: str = SHOPPER, token: str | None = None) -> str:
    cookie = f"{SHOPPER_COOKIE.name}={shopper}"
    return cookie + (f"; {SEGMENT_COOKIE.name}={token}" if token else "")


def valid_token(hseg: str = HSEG) -> str:
    return sign_segment(parse_hseg(hseg), 4_000_000_000, KEYRING)


def worker_get(w: WorkerHarness, path: str = "/p13n/v1/rail/home", **headers: str) -> Reply:
    """GET ``path`` on the shop's host from the Worker in Pyodide (``a_b`` is header ``a-b``)."""
    hs = [[k.replace("_", "-"), v] for k, v in headers.items()]
    r = w.call("fetch", url=SHOP + path, headers=hs)
    return Reply(r["status"], [(k, v) for k, v in r["headers"]], r["body"], r["pending"])


def drain(w: WorkerHarness) -> dict[str, Any]:
    """Run the Worker's pending background work (``ctx.waitUntil``); no task may have failed."""
    result = w.call("drain")
    assert result["errors"] == []
    return result
