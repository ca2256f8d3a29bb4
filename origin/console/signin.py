"""Sign-in with an admin-API token, sign-out, and the console's home (the first allowed page)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from origin.auth import caller_for
from origin.console import session as sessions
from origin.console.views import SECTIONS, Ctx, page, redirect, render
from origin.state import get_state

__all__ = ["home", "sign_in", "sign_in_form", "sign_out"]

MAX_TOKEN = 200
_HOME = {
    "experiments": "/console/experiments",
    "merchandising": "/console/catalog",
    "pipeline": "/console/pipeline",
}


@page(None)
async def home(request: Request, ctx: Ctx) -> Response:
    """``/console``: the first section the role may open, else the sign-in page."""
    if not ctx.session.signed_in or "session" in ctx.extra:
        return redirect("/console/signin")
    first = next((s for s in SECTIONS if ctx.allowed(s)), None)
    if first is None:
        return render(request, ctx, "error.html", 403, title="Not allowed", detail="No pages.")
    return redirect(_HOME[first])


@page(None)
async def sign_in_form(request: Request, ctx: Ctx) -> Response:
    """The sign-in page."""
    return render(request, ctx, "signin.html")


@page(None)
async def sign_in(request: Request, ctx: Ctx) -> Response:
    """Check the token; a known console role gets a new session (new nonce, new CSRF)."""
    state = get_state(request)
    token = ctx.value("token")
    caller = caller_for(token, state.settings) if 0 < len(token) <= MAX_TOKEN else None
    if caller is None:
        return render(request, ctx, "signin.html", 401, error="That token is not recognised.")
    if caller.role == "service":
        return render(
            request, ctx, "signin.html", 403,
            error="Service tokens are for edges; sign in with a person's token.",
        )  # fmt: skip
    s = state.settings
    ctx.extra["session"] = sessions.new(
        state.clock(), s.console_session_s, caller.role, caller.fingerprint
    )
    return redirect("/console")


@page(None)
async def sign_out(request: Request, ctx: Ctx) -> Response:
    """End the session: revoked at once (a copy of its cookie no longer works), and a fresh
    signed-out session."""
    state = get_state(request)
    if ctx.session.signed_in:
        await sessions.revoke(state, ctx.session)
    ctx.extra["session"] = sessions.new(state.clock(), state.settings.console_session_s)
    return redirect("/console/signin")
