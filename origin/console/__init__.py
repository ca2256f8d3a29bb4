"""The web console at ``/console`` for merchandisers, experimenters and operators.

Server-rendered (Jinja2, autoescaped) with a little plain JavaScript; no build step. Pages
are a client of the admin API, called in-process with the signed-in user's token
(``origin.console.api``), so validation, roles and the audit log are the API's own.

| path | role | what |
|---|---|---|
| ``/console/signin`` | anyone | sign in with an admin-API token (not a service token) |
| ``/console/experiments…`` | experimenter | list, create, edit, start, stop, roll back, results |
| ``/console/catalog``, ``/console/invalidations…`` | merchandiser | stock, price, purges |
| ``/console/rails`` | merchandiser | a route's rail as the API answers it, names and pictures |
| ``/console/pipeline`` | admin | lag, dead letters and requeue, edge hit ratio |

Mounted (not a list of ``Route``), so the OpenAPI document, which lists the JSON API, does
not describe these HTML pages.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from origin.console import (
    experiment_pages,
    merchandising,
    pipeline_page,
    rails,
    rules_page,
    signin,
)
from origin.routing import merge_methods

__all__ = ["routes"]

STATIC = Path(__file__).parent / "static"


def routes() -> list[BaseRoute]:
    """The console, mounted at ``/console``."""
    x, m = experiment_pages, merchandising
    pages = [
        Route("/", signin.home, methods=["GET"]),
        Route("/signin", signin.sign_in_form, methods=["GET"]),
        Route("/signin", signin.sign_in, methods=["POST"]),
        Route("/signout", signin.sign_out, methods=["POST"]),
        Route("/experiments", x.list_page, methods=["GET"]),
        Route("/experiments/new", x.new_form, methods=["GET"]),
        Route("/experiments/new", x.new, methods=["POST"]),
        Route("/experiments/{key}", x.edit_form, methods=["GET"]),
        Route("/experiments/{key}", x.edit, methods=["POST"]),
        Route("/experiments/{key}/start", x.start, methods=["POST"]),
        Route("/experiments/{key}/stop", x.stop, methods=["POST"]),
        Route("/experiments/{key}/rollback", x.rollback, methods=["POST"]),
        Route("/experiments/{key}/results", x.results, methods=["GET"]),
        Route("/catalog", m.catalog, methods=["GET"]),
        Route("/catalog/{sku:path}", m.update_item, methods=["POST"]),
        Route("/invalidations", m.invalidations, methods=["GET"]),
        Route("/rails", rails.rails, methods=["GET"]),
        Route("/invalidations", m.push, methods=["POST"]),
        Route("/purges", m.purge_log, methods=["GET"]),
        Route("/invalidations/{id}", m.invalidation, methods=["GET"]),
        Route("/invalidations/{id}/status", m.invalidation_status, methods=["GET"]),
        Route("/rules", rules_page.rules, methods=["GET"]),
        Route("/rules", rules_page.create, methods=["POST"]),
        Route("/rules/{name}/delete", rules_page.delete, methods=["POST"]),
        Route("/pipeline", pipeline_page.health, methods=["GET"]),
        Route("/pipeline/dlq/{id}", pipeline_page.dead_letter, methods=["GET"]),
        Route("/pipeline/dlq/{id}/requeue", pipeline_page.requeue, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="console-static"),
    ]
    return [Mount("/console", routes=merge_methods(pages))]
