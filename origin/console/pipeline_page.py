"""Pipeline health page: lag per partition, dead letters with requeue, edge hit ratio chart,
and offload and a monthly egress estimate from the edges' heartbeats (``cache_keys.costs``)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from origin.console.api import AdminApi, ApiError
from origin.console.charts import ratio_chart
from origin.console.views import Ctx, page, redirect, render

__all__ = ["dead_letter", "health", "requeue"]

SECTION = "pipeline"
DLQ_SHOWN = 50
_ID_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
NOTICES = {"requeued": "Requeued: the event is back on its partition stream."}


def _api(ctx: Ctx) -> AdminApi:
    assert ctx.api is not None
    return ctx.api


async def _page(
    request: Request, ctx: Ctx, status: int = 200, refused: dict[str, str] | None = None
) -> Response:
    api = _api(ctx)
    overview = await api.get("/v1/admin/pipeline")
    dlq = await api.get(f"/v1/admin/dlq?limit={DLQ_SHOWN}")  # bounded previews
    chart = ratio_chart(overview["history"]["buckets"], ("hit_ratio", "freshness"))
    return render(
        request, ctx, "pipeline.html", status, overview=overview, dlq=dlq, chart=chart,
        refused=refused or {}, notice=NOTICES.get(request.query_params.get("done", "")),
    )  # fmt: skip


@page(SECTION)
async def health(request: Request, ctx: Ctx) -> Response:
    """The page."""
    return await _page(request, ctx)


@page(SECTION)
async def dead_letter(request: Request, ctx: Ctx) -> Response:
    """One dead letter's original, whole, as a download (the API's bytes, unchanged)."""
    entry_id = str(request.path_params["id"])
    if not _ID_RE.fullmatch(entry_id):
        raise ApiError(404, {"detail": "no such dead letter"})
    raw, headers = await _api(ctx).get_bytes(f"/v1/admin/dlq/{entry_id}")
    return Response(raw, media_type="application/octet-stream", headers=headers)


@page(SECTION)
async def requeue(request: Request, ctx: Ctx) -> Response:
    """Requeue one dead letter; a still-invalid event is refused with its reason."""
    entry_id = str(request.path_params["id"])
    if not _ID_RE.fullmatch(entry_id):
        raise ApiError(404, {"detail": "no such dead letter"})
    try:
        await _api(ctx).post(f"/v1/admin/dlq/{entry_id}/requeue")
    except ApiError as exc:
        if exc.status != 409:
            raise
        return await _page(request, ctx, 409, refused={entry_id: exc.detail})
    return redirect("/console/pipeline?done=requeued")
