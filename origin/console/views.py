"""What every console page shares: the session check, CSRF on POST, roles, templates.

``page(section)`` wraps a handler ``(request, ctx) -> Response``: it reads the session,
refuses a POST whose CSRF token does not match (403), sends a signed-out visitor to the
sign-in page, refuses a role the section does not allow (403), opens the admin API with the
user's token, renders API failures as an error page, and sets the security headers.
Templates autoescape everything: user-supplied text is always shown as text.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from origin.console import session as sessions
from origin.console.api import AdminApi, ApiError, open_api
from origin.console.session import Session
from origin.state import get_state

__all__ = ["SECTIONS", "Ctx", "page", "redirect", "render"]

# Which roles see which section (admin sees everything); the API checks again.
SECTIONS: dict[str, frozenset[str]] = {
    "experiments": frozenset({"experimenter", "admin"}),
    "merchandising": frozenset({"merchandiser", "admin"}),
    "pipeline": frozenset({"admin"}),
}
MAX_FORM_BYTES = 64 * 1024
# Autoescaping on for every template (not only *.html): user text is always shown as text.
_TEMPLATES = Jinja2Templates(
    env=Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
)
_TEMPLATES.env.filters["utc"] = lambda ms: (
    datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "–"
)  # epoch ms as people read it, in the console's one time zone
# img-src https: shows the catalog's product images (``image_url``) from the shop's CDN.
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass
class Ctx:
    """One request's console context."""

    session: Session
    csrf: str
    api: AdminApi | None = None
    form: FormData | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def role(self) -> str:
        """The signed-in role ('' when signed out)."""
        return self.session.role

    def allowed(self, section: str) -> bool:
        """Whether this role may open ``section``."""
        return self.role in SECTIONS[section]

    def value(self, name: str) -> str:
        """A posted form field as text ('' when absent)."""
        raw = self.form.get(name) if self.form is not None else None
        return raw.strip() if isinstance(raw, str) else ""


def render(request: Request, ctx: Ctx, template: str, status: int = 200, **values: Any) -> Response:
    """A template with the session's role, navigation and CSRF token."""
    nav = [s for s in SECTIONS if ctx.allowed(s)]
    context = {"ctx": ctx, "role": ctx.role, "csrf": ctx.csrf, "nav": nav, **values}
    response: Response = _TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    return response


def redirect(path: str) -> Response:
    """303 See Other (after a POST, the browser GETs the answer)."""
    return RedirectResponse(path, status_code=303)


def _cookie(request: Request, response: Response, s: Session, ring: Any, ttl_s: int) -> None:
    response.set_cookie(
        sessions.COOKIE,
        sessions.encode(s, ring),
        max_age=ttl_s,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def _form(request: Request) -> FormData | None:
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
        return None
    return await request.form(max_files=0, max_fields=200)


Handler = Callable[[Request, Ctx], Awaitable[Response]]


def page(section: str | None) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a console handler; ``section`` None means no sign-in needed (the sign-in page)."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            response = await _run(request, section, handler)
            response.headers.update(_HEADERS)
            return response

        return endpoint

    return wrap


async def _run(request: Request, section: str | None, handler: Handler) -> Response:
    state = get_state(request)
    s, now = state.settings, state.clock()
    current = sessions.decode(request.cookies.get(sessions.COOKIE), s.console_keys, now)
    ctx = Ctx(current or sessions.new(now, s.console_session_s), "")
    ctx.csrf = sessions.csrf_token(ctx.session, s.console_keys)
    response = await _checked(request, ctx, current, section, handler)
    if current is None or "session" in ctx.extra:
        new = ctx.extra.get("session", ctx.session)
        _cookie(request, response, new, s.console_keys, s.console_session_s)
    return response


async def _checked(
    request: Request, ctx: Ctx, current: Session | None, section: str | None, handler: Handler
) -> Response:
    state = get_state(request)
    s, ring = state.settings, state.settings.console_keys
    if request.method == "POST":
        ctx.form = await _form(request)
        presented = ctx.form.get("csrf") if ctx.form is not None else None
        if not sessions.csrf_ok(current, presented, ring):
            return render(request, ctx, "error.html", 403, title="Form refused", detail=(
                "The form did not carry this session's CSRF token. Reload the page and try again."
            ))  # fmt: skip
    token = sessions.token_for(ctx.session, s) if ctx.session.signed_in else None
    if token is not None and await sessions.is_revoked(state, ctx.session):
        token = None  # signed out: a saved copy of the cookie ends here too
    if ctx.session.signed_in and token is None:  # signed out, token removed or role changed
        ctx.session = ctx.extra["session"] = sessions.new(state.clock(), s.console_session_s)
        ctx.csrf = sessions.csrf_token(ctx.session, ring)
    if section is not None and token is None:
        return redirect("/console/signin")
    if section is not None and not ctx.allowed(section):
        detail = f"Your role ({ctx.role}) may not open {section}."
        return render(request, ctx, "error.html", 403, title="Not allowed", detail=detail)
    return await _with_api(request, ctx, token, handler)


async def _with_api(request: Request, ctx: Ctx, token: str | None, handler: Handler) -> Response:
    try:
        if token is None:
            return await handler(request, ctx)
        async with open_api(request.app, token) as api:
            ctx.api = api
            return await handler(request, ctx)
    except ApiError as exc:
        title = "Not found" if exc.status == 404 else "The admin API refused"
        return render(request, ctx, "error.html", exc.status, title=title, detail=exc.detail)


def field_errors(exc: ApiError, fields: Mapping[str, str]) -> dict[str, str]:
    """An API error placed on the form field it names (else on the whole form, key '')."""
    name = exc.field
    for api_field, form_field in fields.items():
        if name == api_field or name.startswith((api_field + "[", api_field + ".")):
            return {form_field: exc.detail}
    return {"": exc.detail}
