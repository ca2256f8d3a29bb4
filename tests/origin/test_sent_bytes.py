"""The origin counts the bytes it serves, by plane: what edges fetch vs the admin plane."""

from __future__ import annotations

import pytest

from origin.app import create_app
from origin.settings import Settings
from tests.support.asgi import app_client

pytestmark = pytest.mark.anyio


def _sample(text: str, plane: str) -> float:
    prefix = f'p13n_origin_sent_bytes_total{{plane="{plane}"}} '
    return float(next(line for line in text.splitlines() if line.startswith(prefix))[len(prefix) :])


async def test_bytes_served_are_counted_by_plane(redis_url) -> None:
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        schema = await http.get("/v1/schemas/events")  # an edge-plane route
        health = await http.get("/healthz")
        text = (await http.get("/metrics")).text
    assert _sample(text, "edge") == len(schema.content)
    assert _sample(text, "admin") == len(health.content)


async def test_request_metric_label_sets_stay_bounded_whatever_the_method(redis_url) -> None:
    """A client invents methods at will: each must not mint a histogram series of its own."""
    async with app_client(create_app(Settings(redis_url=redis_url))) as http:
        for n in range(50):
            await http.request(f"X{n}", "/no-such-page")
        text = (await http.get("/metrics")).text
    methods = {
        line.split('method="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("p13n_origin_request_seconds_count{")
    }
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
