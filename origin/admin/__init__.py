"""The admin API under ``/v1/admin/``: bearer tokens with roles, every change audited.

| role | may |
|---|---|
| merchandiser | catalog, invalidations and the purge log, merchandising rules |
| experimenter | experiments, strategies, results, the global holdout |
| admin | everything: erasure, audit log, tokens' roles, pipeline, dead letters, backup, restore |
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from origin.admin import (
    audit,
    backup,
    catalog,
    catalog_search,
    experiments,
    holdout,
    invalidations,
    merch_rules,
    pipeline,
    privacy,
    purge_log,
    results,
)

__all__ = ["routes"]


def routes() -> list[BaseRoute]:
    """Every admin route."""
    return [
        *results.routes(),  # before experiments: /{key}/results is more specific
        *experiments.routes(),
        *holdout.routes(),
        *invalidations.routes(),
        *purge_log.routes(),
        *merch_rules.routes(),
        *catalog_search.routes(),
        *catalog.routes(),
        *privacy.routes(),
        *audit.routes(),
        *pipeline.routes(),
        *backup.routes(),
    ]
