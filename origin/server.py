"""Run the origin under uvicorn: ``p13n origin`` (settings from the environment).

With ``workers > 1`` uvicorn imports ``origin.server:app_from_env`` in each worker process
(a factory), so every worker builds its own app, clients and caches from the same settings.
"""

from __future__ import annotations

import logging

import uvicorn
from starlette.applications import Starlette

from origin.app import create_app
from origin.settings import Settings

__all__ = ["app_from_env", "serve"]


def app_from_env() -> Starlette:
    """The app for the settings in the environment (uvicorn factory)."""
    return create_app(Settings.from_env())


def serve(host: str, port: int, workers: int, access_log: bool, log_level: str) -> None:
    """Serve until interrupted."""
    logging.basicConfig(level=logging.INFO if access_log else logging.WARNING, format="%(message)s")
    if not access_log:
        logging.getLogger("p13n.origin.access").setLevel(logging.WARNING)
    uvicorn.run(
        "origin.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # ours is structured and carries no shopper ids
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        lifespan="on",
    )
