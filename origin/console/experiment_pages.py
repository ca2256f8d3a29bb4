"""Experiment pages: list, create, edit, start, stop and roll back, results with the lift
chart. The form lists the named ranking strategies a variation may pick, with what each does;
the API's warnings (an experiment overlapping another) are shown with the page's notice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from cache_keys.wire._check import SLUG_RE
from origin.console import forms
from origin.console.api import AdminApi, ApiError
from origin.console.charts import lift_chart
from origin.console.results_view import guardrail_rows, metric_views, money, timeline_rows
from origin.console.views import Ctx, field_errors, page, redirect, render

__all__ = [
    "edit",
    "edit_form",
    "list_page",
    "new",
    "new_form",
    "results",
    "rollback",
    "start",
    "stop",
]

SECTION = "experiments"
BASE = "/v1/admin/experiments"
STRATEGIES = "/v1/admin/strategies"
# Messages chosen by code after a redirect (never text taken from the URL).
NOTICES = {
    "created": "Experiment created as a draft.",
    "saved": "Changes saved.",
    "unchanged": "Nothing changed.",
    "started": "Experiment started.",
    "stopped": "Experiment stopped.",
    "rolled-back": "Definition rolled back (as a new version).",
}


def _api(ctx: Ctx) -> AdminApi:
    assert ctx.api is not None  # every page of the section is signed in
    return ctx.api


def _key(request: Request) -> str:
    key = str(request.path_params["key"])
    if not SLUG_RE.fullmatch(key):
        raise ApiError(404, {"detail": "no such experiment"})
    return key


def _posted(ctx: Ctx) -> dict[str, str]:
    """The form's fields, with browsers' CRLF line ends made plain."""
    return {f: ctx.value(f).replace("\r\n", "\n") for f in forms.FIELDS}


@page(SECTION)
async def list_page(request: Request, ctx: Ctx) -> Response:
    """Every experiment with its status."""
    doc = await _api(ctx).get(BASE)
    return render(request, ctx, "experiments.html", experiments=doc["experiments"])


async def _form_page(
    request: Request, ctx: Ctx, values: dict[str, str], errors: dict[str, str], **extra: Any
) -> Response:
    status = 400 if errors else 200
    catalog = (await _api(ctx).get(STRATEGIES))["strategies"]
    return render(
        request,
        ctx,
        "experiment_form.html",
        status,
        values=values,
        errors=errors,
        strategies=catalog,
        described={s["name"]: s["description"] for s in catalog},
        **extra,
    )


def _with_warnings(text: str, answer: dict[str, Any]) -> str:
    warnings = answer.get("warnings") or []
    return " ".join([text, *(f"Warning: {w}." for w in warnings)])


@page(SECTION)
async def new_form(request: Request, ctx: Ctx) -> Response:
    """An empty form with sensible defaults."""
    values = dict.fromkeys(forms.FIELDS, "")
    values.update(variations="control\ntreatment", weights="0.5, 0.5", coverage="1")
    return await _form_page(request, ctx, values, {}, experiment=None)


async def _submit(
    request: Request,
    ctx: Ctx,
    values: dict[str, str],
    exp: dict[str, Any] | None,
    send: Callable[[], Awaitable[Response]],
) -> Response:
    """Run ``send``; a form or API validation error re-renders the form with it in place."""
    try:
        return await send()
    except forms.FormError as exc:
        errors = {exc.field: str(exc)}
    except ApiError as exc:
        if exc.status >= 500:
            raise
        errors = field_errors(exc, forms.API_FIELDS)
    return await _form_page(request, ctx, values, errors, experiment=exp)


@page(SECTION)
async def new(request: Request, ctx: Ctx) -> Response:
    """Create through the API; its validation errors go next to their fields."""
    values = _posted(ctx)

    async def send() -> Response:
        created = await _api(ctx).post(BASE, forms.to_doc(values))
        exp = created["experiment"]
        if not created.get("warnings"):
            return redirect(f"/console/experiments/{quote(exp['key'])}?done=created")
        notice = _with_warnings(NOTICES["created"], created)
        return await _form_page(request, ctx, forms.to_form(exp), {}, experiment=exp, notice=notice)

    return await _submit(request, ctx, values, None, send)


@page(SECTION)
async def edit_form(request: Request, ctx: Ctx) -> Response:
    """The experiment's form, its status and actions."""
    exp = await _api(ctx).get(f"{BASE}/{_key(request)}")
    notice = NOTICES.get(request.query_params.get("done", ""))
    return await _form_page(request, ctx, forms.to_form(exp), {}, experiment=exp, notice=notice)


@page(SECTION)
async def edit(request: Request, ctx: Ctx) -> Response:
    """Send only the changed fields (coverage ramps in place; new weights re-seed)."""
    key = _key(request)
    api = _api(ctx)
    exp = await api.get(f"{BASE}/{key}")
    values = {**_posted(ctx), "key": key}

    async def send() -> Response:
        doc = forms.changes(values, exp)
        if not doc:
            return redirect(f"/console/experiments/{key}?done=unchanged")
        answer = await api.call("PATCH", f"{BASE}/{key}", doc)
        if not answer.get("notice"):
            return redirect(f"/console/experiments/{key}?done=saved")
        after = answer["experiment"]  # re-seeded: say so on the page
        notice = _with_warnings(answer["notice"], answer)
        return await _form_page(
            request, ctx, forms.to_form(after), {}, experiment=after, notice=notice
        )

    return await _submit(request, ctx, values, exp, send)


async def _action(
    request: Request, ctx: Ctx, action: str, done: str, body: dict[str, Any] | None = None
) -> Response:
    key = _key(request)
    try:
        answer = await _api(ctx).post(f"{BASE}/{key}/{action}", body)
    except ApiError as exc:
        if exc.status >= 500 or (exc.status == 404 and action != "rollback"):
            raise  # a rollback's 404 is a version with no record: said on the page
        exp = await _api(ctx).get(f"{BASE}/{key}")
        errors = field_errors(exc, forms.API_FIELDS)
        return await _form_page(request, ctx, forms.to_form(exp), errors, experiment=exp)
    if answer.get("warnings"):
        exp = answer["experiment"]
        notice = _with_warnings(NOTICES[done], answer)
        return await _form_page(request, ctx, forms.to_form(exp), {}, experiment=exp, notice=notice)
    return redirect(f"/console/experiments/{key}?done={done}")


@page(SECTION)
async def start(request: Request, ctx: Ctx) -> Response:
    """Start (409s, such as an overlapping layer, are shown on the form)."""
    return await _action(request, ctx, "start", "started")


@page(SECTION)
async def stop(request: Request, ctx: Ctx) -> Response:
    """Stop."""
    return await _action(request, ctx, "stop", "stopped")


@page(SECTION)
async def rollback(request: Request, ctx: Ctx) -> Response:
    """Restore an earlier version's definition (the button asks for confirmation first)."""
    raw = ctx.value("version").strip()
    if not raw.isdigit():
        key = _key(request)
        exp = await _api(ctx).get(f"{BASE}/{key}")
        errors = {"status": f"{raw[:20]!r} is not a version number"}
        return await _form_page(request, ctx, forms.to_form(exp), errors, experiment=exp)
    return await _action(request, ctx, "rollback", "rolled-back", {"version": int(raw)})


@page(SECTION)
async def results(request: Request, ctx: Ctx) -> Response:
    """Every metric with its definition, fixed and always-valid intervals, the lift chart,
    the SRM check and the cumulative lift per day."""
    key = _key(request)
    exp = await _api(ctx).get(f"{BASE}/{key}")
    doc = await _api(ctx).get(f"{BASE}/{key}/results")
    chart = lift_chart(doc["variants"])
    return render(
        request, ctx, "results.html", experiment=exp, results=doc, chart=chart,
        metrics=metric_views(doc), timeline=timeline_rows(doc), money=money,
        guardrails=guardrail_rows(doc),
    )  # fmt: skip
