"""Run the origin under uvicorn: ``p13n origin`` (settings from the environment).

With ``workers > 1`` uvicorn imports ``origin.server:app_from_env`` in each worker process
(a factory), so every worker builds its own app, clients and caches from the same settings.
"""

from __future__ import annotations

import copy
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG

from origin.app import create_app
from origin.settings import Settings

__all__ = ["app_from_env", "serve"]


def app_from_env() -> Starlette:
    """The app for the settings in the environment (uvicorn factory)."""
    return create_app(Settings.from_env())


def log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging config plus ours (applied in every worker process)."""
    cfg: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    cfg["formatters"]["p13n"] = {"format": "%(message)s"}
    cfg["handlers"]["p13n"] = {
        "class": "logging.StreamHandler",
        "formatter": "p13n",
        "stream": "ext://sys.stdout",
    }
    level = "INFO" if access_log else "WARNING"
    cfg["loggers"]["p13n"] = {"handlers": ["p13n"], "level": "WARNING", "propagate": False}
    cfg["loggers"]["p13n.origin.access"] = {"level": level}
    return cfg


def serve(host: str, port: int, workers: int, access_log: bool, log_level: str) -> None:
    """Serve until interrupted."""
    uvicorn.run(
        "origin.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # ours is structured and carries no shopper ids
        log_level=log_level,
        log_config=log_config(access_log),
        loop="uvloop",
        http="httptools",
        lifespan="on",
    )
