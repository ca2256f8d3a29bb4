"""The merchandising rules page: list the rules, create one, delete one (through the admin
API, as every console page works), each change followed to the edges by its soft purge."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from cache_keys.wire._check import SLUG_RE
from origin.console.api import AdminApi, ApiError
from origin.console.views import Ctx, page, redirect, render

__all__ = ["create", "delete", "rules"]

SECTION = "merchandising"
KINDS = ("pin", "boost", "bury", "block")
FIELDS = ("name", "kind", "target", "value", "position", "factor", "routes", "segments",
          "start", "end", "reason")  # fmt: skip


def _api(ctx: Ctx) -> AdminApi:
    assert ctx.api is not None
    return ctx.api


async def _list(ctx: Ctx) -> list[dict[str, Any]]:
    doc: dict[str, Any] = await _api(ctx).get("/v1/admin/rules")
    rules: list[dict[str, Any]] = doc["rules"]
    return rules


@page(SECTION)
async def rules(request: Request, ctx: Ctx) -> Response:
    """Every rule, and the form to add one."""
    values = {"kind": "pin", "target": "skus", "position": "1"}
    return render(request, ctx, "rules.html", rules=await _list(ctx), values=values,
                  invalidation=request.query_params.get("inv", ""))  # fmt: skip


def _split(raw: str) -> list[str]:
    return [v.strip() for v in raw.replace("\n", ",").split(",") if v.strip()]


def _body(ctx: Ctx) -> dict[str, Any]:
    """The API body from the form (the API checks every value and names the field)."""
    body: dict[str, Any] = {"name": ctx.value("name"), "kind": ctx.value("kind")}
    value = ctx.value("value")
    if ctx.value("target") == "category":
        body["category"] = value
    else:
        body["skus"] = _split(value)
    if body["kind"] == "pin":
        pos = ctx.value("position") or "1"
        body["position"] = int(pos) if pos.isdigit() and len(pos) < 4 else pos
    if body["kind"] in ("boost", "bury"):
        try:
            body["factor"] = float(ctx.value("factor"))
        except ValueError:
            body["factor"] = ctx.value("factor")
    for field in ("routes", "segments"):
        if ctx.value(field):
            body[field] = _split(ctx.value(field))
    for field, api_field in (("start", "start_ms"), ("end", "end_ms")):
        raw = ctx.value(field)
        if raw:  # a datetime-local input has no offset: the console speaks UTC
            body[api_field] = raw if raw[-1:] == "Z" or "+" in raw[10:] else raw + "Z"
    if ctx.value("reason"):
        body["reason"] = ctx.value("reason")
    return body


@page(SECTION)
async def create(request: Request, ctx: Ctx) -> Response:
    """Create a rule; back to the list with the soft purge that carries it to the edges."""
    values = {f: ctx.value(f) for f in FIELDS}
    try:
        answer = await _api(ctx).post("/v1/admin/rules", _body(ctx))
    except ApiError as exc:
        if exc.status >= 500:
            raise
        field = {"skus": "value", "category": "value", "start_ms": "start", "end_ms": "end"}.get(
            exc.field, exc.field
        )
        return render(request, ctx, "rules.html", 400, rules=await _list(ctx), values=values,
                      errors={field or "name": exc.detail})  # fmt: skip
    return redirect(f"/console/rules?inv={quote(answer['invalidation'])}")


@page(SECTION)
async def delete(request: Request, ctx: Ctx) -> Response:
    """Delete a rule."""
    name = str(request.path_params["name"])
    if not SLUG_RE.fullmatch(name):
        raise ApiError(404, {"detail": "no such rule"})
    answer = await _api(ctx).call("DELETE", f"/v1/admin/rules/{name}")
    return redirect(f"/console/rules?inv={quote(answer['invalidation'])}")
