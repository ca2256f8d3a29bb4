"""The console's browser tests: the origin they drive, and the steps every test repeats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from playwright.sync_api import Page

from tests.support import data
from tests.support.servers import OriginProcess

__all__ = ["ConsoleStack", "shot", "sign_in"]


@dataclass
class ConsoleStack:
    """The origin under test and a client of its Redis."""

    origin: OriginProcess
    redis: redis.Redis

    @property
    def url(self) -> str:
        return self.origin.url

    def api(self, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
        """``method path`` on the origin's API with ``token``."""
        return httpx.request(method, self.url + path, headers=data.bearer(token), timeout=5, **kw)


def sign_in(page: Page, stack: ConsoleStack, token: str) -> None:
    """Sign in to the console with ``token`` through its form."""
    page.goto(stack.url + "/console/signin")
    page.fill("#token", token)
    page.get_by_role("button", name="Sign in").click()


def shot(page: Page, tmp_path: Path, name: str) -> None:
    """A full-page screenshot into the test's ``tmp_path`` (never committed)."""
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
