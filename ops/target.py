"""Where the running system is, and how the operations commands talk to it.

A ``Target`` comes from ``--stack DIR`` (``stack.json`` written by ``p13n up``) with any of
``--origin``/``--edge``/``--edge-admin``/``--redis-url``/``--token`` overriding it, and
``P13N_ORIGIN_URL``/``P13N_REDIS_URL``/``P13N_ADMIN_TOKEN`` filling what neither names. Every
change of admin state goes through the origin's admin API with the token (``Target.api``):
validation, roles and the audit log are the service's. Reads of the online store use the
segmenter's key layout (``segmenter.schema``). Every failure to reach a part becomes one
``OpsError`` with a one-line message; the command layer prints it and exits non-zero, never
with a traceback.

    OpsError            one-line message for the operator (exit 1)
     +-- ApiError       the admin API answered 4xx/5xx: status and problem document
     +-- UsageError     the command line is wrong or names no part (exit 2)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from redis.exceptions import RedisError

from ops.stack import DEFAULT_DIR, STOP_TIMEOUT_S, StackError, StackInfo, load_info
from segmenter.schema import DEFAULT_PARTITIONS, DEFAULT_PREFIX, Keys
from segmenter.settings import ProcessorSettings

__all__ = [
    "HTTP_TIMEOUT_S",
    "ApiError",
    "OpsError",
    "Target",
    "add_stack_arg",
    "add_target_args",
    "emit",
    "reason",
    "resolve",
    "stack_dir",
]

# An operator's command waits at most this long for one HTTP answer or Redis reply.
HTTP_TIMEOUT_S = 5.0
REDIS_TIMEOUT_S = 3.0
STACK_ENV = "P13N_STACK"
# The processor's defaults, overridden by the same P13N_* variables it reads.
_PROCESSOR = ProcessorSettings()
# What the operations commands read when neither --stack nor a flag names a part (the rows of
# docs/CONFIGURATION.md's ops table; tools/config_doc.py writes it).
ENVIRONMENT: tuple[dict[str, Any], ...] = (
    {"env": STACK_ENV, "doc": "the stack directory of every command (`up --dir`, `--stack`)",
     "default": "`.p13n`"},
    {"env": "P13N_ORIGIN_URL", "doc": "the origin's base URL (the admin API), else --origin"},
    {"env": "P13N_ADMIN_TOKEN", "doc": "admin API bearer token, else --token", "secret": True},
    {"env": "P13N_REDIS_URL", "doc": "the online store read by status and lag, else --redis-url",
     "secret": True},  # a URL may carry a password
    {"env": "P13N_PREFIX", "doc": "key namespace in Redis, else --prefix", "default": "`p13n`"},
    {"env": "P13N_PARTITIONS", "doc": "stream partitions, else --partitions", "type": "int",
     "default": f"`{DEFAULT_PARTITIONS}`"},
    {"env": "P13N_ALLOWED_LATENESS_MS", "doc": "the processor's watermark lag (lag's view)",
     "type": "int", "default": f"`{_PROCESSOR.allowed_lateness_ms}`"},
    {"env": "P13N_EGRESS_PRICE_PER_GB", "doc": "price of one GB of egress, for `status`'s "
     "monthly cost estimate (in your currency)", "type": "float", "default": "`0.09`"},
    {"env": "P13N_STOP_GRACE_S", "doc": "seconds the stack's children get after SIGTERM, when "
     "`up` or `demo` stops, before SIGKILL", "type": "float", "default": f"`{STOP_TIMEOUT_S}`"},
)  # fmt: skip


def reason(exc: BaseException) -> str:
    """An error's own words for the operator, never its class name (a bare timeout says so)."""
    text = str(exc).strip()
    if text:
        return text
    return "timed out" if isinstance(exc, TimeoutError | httpx.TimeoutException) else "failed"


class OpsError(RuntimeError):
    """A part is missing, down or answered an error: the message is one line."""


class UsageError(OpsError):
    """The command line itself is wrong (exit 2); the message names the argument."""


class ApiError(OpsError):
    """The admin API answered an error: its status and problem document."""

    def __init__(self, message: str, status: int, problem: dict[str, Any], detail: str) -> None:
        super().__init__(message)
        self.status, self.problem, self.detail = status, problem, detail


@dataclass(frozen=True)
class Target:
    """The parts one command may talk to; ``None`` when unknown."""

    origin_url: str | None
    edge_url: str | None
    edge_admin_url: str | None
    redis_url: str | None
    token: str | None
    prefix: str = DEFAULT_PREFIX
    partitions: int = DEFAULT_PARTITIONS
    # The processor's watermark lag behind the largest event time (its setting's default).
    allowed_lateness_ms: int = _PROCESSOR.allowed_lateness_ms
    why_missing: str = ""
    # The stack's supervised children (pid, restarts, last exit), when a stack names them.
    children: dict[str, dict[str, Any]] | None = None
    # The stack that names every part was stopped cleanly (`p13n up` ended) at this time.
    stopped_at_ms: int | None = None
    stack_dir: str = ""

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    def need(self, name: str) -> str:
        """The URL (or token) of ``name``; ``OpsError`` saying how to give it when unknown."""
        value: str | None = getattr(self, name)
        if not value:
            flag = {
                "origin_url": "--origin URL or set P13N_ORIGIN_URL",
                "edge_url": "--edge URL",
                "edge_admin_url": "--edge-admin URL",
                "redis_url": "--redis-url URL",
                "token": "--token T or set P13N_ADMIN_TOKEN",
            }[name]
            # Nothing says where the part is: the command line must (exit 2).
            raise UsageError(f"no {name.replace('_', ' ')}: pass {flag} ({self.why_missing})")
        return value

    # -- HTTP ---------------------------------------------------------------------------------
    def request(self, method: str, url: str, *, auth: bool = False, **kw: Any) -> httpx.Response:
        """One HTTP request; ``OpsError`` when the part cannot be reached."""
        headers = dict(kw.pop("headers", {}))
        if auth:
            headers["authorization"] = f"Bearer {self.need('token')}"
        try:
            return httpx.request(method, url, headers=headers, timeout=HTTP_TIMEOUT_S, **kw)
        except httpx.HTTPError as exc:
            raise OpsError(f"{url} is not reachable ({reason(exc)})") from exc

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """An admin API call on the origin; the JSON answer, or ``OpsError`` with the problem."""
        url = self.need("origin_url").rstrip("/") + path
        kw: dict[str, Any] = {}
        if body is not None:
            kw["content"] = orjson.dumps(body)
            kw["headers"] = {"content-type": "application/json"}
        resp = self.request(method, url, auth=True, **kw)
        if resp.status_code >= 400:
            problem = _problem(resp)
            detail = str(problem.get("detail") or problem.get("title") or problem)
            raise ApiError(f"{method} {path}: {resp.status_code} {detail}",
                           resp.status_code, problem, detail)  # fmt: skip
        return resp.json() if resp.content else None

    # -- Redis --------------------------------------------------------------------------------
    @contextmanager
    def redis(self) -> Iterator[redis.Redis]:
        """A synchronous client on the online store; Redis errors become ``OpsError``."""
        url = self.need("redis_url")
        try:
            client = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
        except ValueError as exc:  # redis-py's answer to a malformed URL or scheme
            raise UsageError(f"--redis-url {_safe(url)}: {exc}") from exc
        try:
            yield client
        except (RedisError, OSError) as exc:
            raise OpsError(f"Redis at {_safe(url)}: {reason(exc)}") from exc
        finally:
            client.close()


def _problem(resp: httpx.Response) -> dict[str, Any]:
    """The answer's problem document (RFC 9457); a bare one around any other body."""
    try:
        doc = resp.json()
    except ValueError:
        return {"detail": resp.text[:200].replace("\n", " ")}
    return doc if isinstance(doc, dict) else {"detail": str(doc)}


def _safe(url: str) -> str:
    """A Redis URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


# The parts a command may name on its command line; each command lists only its own.
PARTS = ("origin", "edge", "edge-admin", "redis", "token", "keys")


def stack_dir(env: dict[str, str] | None = None) -> str:
    """The stack directory when ``--stack`` is not given: ``$P13N_STACK``, else ``.p13n``."""
    e = os.environ if env is None else env
    return e.get(STACK_ENV) or str(DEFAULT_DIR)


def add_stack_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--stack DIR``, defaulting to ``$P13N_STACK`` or ``.p13n``."""
    p.add_argument(
        "--stack",
        default=None,
        metavar="DIR",
        help=f"the stack directory `p13n up` wrote (default ${STACK_ENV}, else {DEFAULT_DIR})",
    )


def add_target_args(p: argparse.ArgumentParser, *parts: str) -> None:
    """``--stack``, ``--json`` and the options naming ``parts`` (all of ``PARTS`` if none)."""
    wanted = set(parts or PARTS)
    if wanted - set(PARTS):
        raise ValueError(f"unknown parts {sorted(wanted - set(PARTS))}")
    g = p.add_argument_group("where the system runs")
    add_stack_arg(g)
    flags = {
        "origin": ("--origin", "origin base URL (overrides the stack; else $P13N_ORIGIN_URL)"),
        "edge": ("--edge", "edge base URL (overrides the stack)"),
        "edge-admin": ("--edge-admin", "edge admin (metrics) base URL (overrides the stack)"),
        "redis": ("--redis-url", "online store URL (overrides the stack; else $P13N_REDIS_URL)"),
        "token": ("--token", "admin API bearer token (default: the stack's, else "
                  "$P13N_ADMIN_TOKEN)"),
    }  # fmt: skip
    for part in PARTS:
        if part in wanted and part in flags:
            flag, text = flags[part]
            g.add_argument(flag, help=text)
    if "keys" in wanted:
        g.add_argument("--prefix", help="key namespace (default $P13N_PREFIX or p13n)")
        g.add_argument(
            "--partitions", type=int, help="stream partitions (default $P13N_PARTITIONS)"
        )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not an integer") from None


def resolve(args: argparse.Namespace, env: dict[str, str] | None = None) -> Target:
    """The target of one command: the stack's parts, overridden by explicit options."""
    env = dict(os.environ) if env is None else env
    opt = vars(args)  # a command has only the options of the parts it talks to
    stack = Path(opt.get("stack") or stack_dir(env))
    info: StackInfo | None = None
    why = ""
    try:
        info = load_info(stack)
    except StackError as exc:
        why = str(exc)
    except (OSError, ValueError, TypeError) as exc:
        why = f"unreadable {stack / 'stack.json'}: {exc}"

    def pick(explicit: str | None, attr: str) -> str | None:
        return explicit or (getattr(info, attr) if info is not None else None)

    token = opt.get("token") or (info.tokens.get("admin") if info is not None else None)
    token = token or env.get("P13N_ADMIN_TOKEN")
    partitions = opt.get("partitions") or _env_int(env, "P13N_PARTITIONS", _PROCESSOR.partitions)
    if partitions < 1:
        raise UsageError(f"--partitions must be at least 1, not {partitions}")
    return Target(
        origin_url=pick(opt.get("origin"), "origin_url") or env.get("P13N_ORIGIN_URL"),
        edge_url=pick(opt.get("edge"), "edge_url"),
        edge_admin_url=pick(opt.get("edge_admin"), "edge_admin_url"),
        redis_url=pick(opt.get("redis_url"), "redis_url") or env.get("P13N_REDIS_URL"),
        token=token,
        prefix=opt.get("prefix") or env.get("P13N_PREFIX") or DEFAULT_PREFIX,
        partitions=partitions,
        allowed_lateness_ms=_env_int(
            env, "P13N_ALLOWED_LATENESS_MS", _PROCESSOR.allowed_lateness_ms
        ),
        why_missing=why or "the stack does not name it",
        children=info.children if info is not None else None,
        stopped_at_ms=_stopped(info, opt),
        stack_dir=str(stack),
    )


def _stopped(info: StackInfo | None, opt: dict[str, Any]) -> int | None:
    """When the stack was stopped, if it is and the command names none of its parts itself."""
    if info is None or info.state != "stopped":
        return None
    explicit = ("origin", "edge", "edge_admin", "redis_url")
    return None if any(opt.get(name) for name in explicit) else info.stopped_at_ms


def emit(args: argparse.Namespace, doc: Any, human: str) -> None:
    """Print ``doc`` as JSON with ``--json``, else the human-readable text."""
    if getattr(args, "json", False):
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    else:
        print(human)
