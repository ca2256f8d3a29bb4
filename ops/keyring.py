"""A stack's secrets (``keys.json``) and ``p13n keys``: rotate its signing key rings.

``keys.json`` (mode 0600, beside the stack's Redis data) holds the admin tokens by role and
the keys by name. A signing key is a ring ``kid:secret[,kid:secret]`` (the first signs, the
second is still accepted); a bare secret, as older stacks wrote it, is the ring ``k1:secret``.
``p13n keys`` rotates the rings in the runbook's three steps (``add`` a new key second,
``promote`` it to first, ``retire`` the old one) and has a running ``p13n up`` restart its
parts with them (SIGHUP, ``ops.stack.Stack.reload``), waiting until it has.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

__all__ = [
    "KEY_NAMES",
    "RINGS",
    "ROLES",
    "ring",
    "stack_keys",
    "stack_secrets",
    "write_private",
]

ROLES = ("admin", "merchandiser", "experimenter", "service")
KEY_NAMES = ("segment_hash", "segment_sign", "context_sign", "console_sign")
# The rings `p13n keys` rotates, by the short name the runbook uses. The segment hashing key
# is no ring: every stored segment id is hashed with it (a new one is a rebuild, not a rotation).
RINGS = {"segment": "segment_sign", "context": "context_sign", "console": "console_sign"}
RELOAD_TIMEOUT_S = 180.0  # three parts restarted one after the other on a loaded machine


def _secret() -> str:
    return secrets.token_urlsafe(24)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (0600, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def ring(value: str) -> str:
    """The key ring ``kid:secret[,kid:secret]`` a stored value stands for.

    >>> ring("abc"), ring("k2:new,k1:old")
    ('k1:abc', 'k2:new,k1:old')
    """
    return value if ":" in value else f"k1:{value}"


def stack_secrets(directory: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The stack directory's (tokens by role, keys by name): read from ``keys.json``, any
    missing one generated and the file (re)written."""
    path = directory / "keys.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    tokens = {r: str(doc.get("tokens", {}).get(r) or _secret()) for r in ROLES}
    keys = {k: str(doc.get("keys", {}).get(k) or _secret()) for k in KEY_NAMES}
    new = {"tokens": tokens, "keys": keys}
    if new != doc:
        write_private(path, json.dumps(new, indent=2))
    return tokens, keys


def stack_keys(directory: Path) -> dict[str, str]:
    """The keys of the stack in ``directory`` (``keys.json``), read only; {} when it has none.
    The commands that hash or sign what a stack stores take them from here, never from a
    default."""
    try:
        doc = json.loads((directory / "keys.json").read_text())
    except FileNotFoundError:
        return {}
    keys = doc.get("keys", {}) if isinstance(doc, dict) else {}
    return {str(k): str(v) for k, v in keys.items() if v}


class RotationError(RuntimeError):
    """A rotation step that does not apply to the rings as they are."""


def _pairs(value: str) -> list[tuple[str, str]]:
    return [tuple(part.split(":", 1)) for part in ring(value).split(",")]  # type: ignore[misc]


def _next_kid(pairs: list[tuple[str, str]]) -> str:
    numbers = [int(kid[1:]) for kid, _ in pairs if kid[:1] == "k" and kid[1:].isdigit()]
    return f"k{max(numbers, default=0) + 1}"


def rotate(value: str, step: str) -> str:
    """The ring after one rotation ``step`` (``add``, ``promote`` or ``retire``).

    >>> rotate("k1:a,k2:b", "promote"), rotate("k2:b,k1:a", "retire")
    ('k2:b,k1:a', 'k2:b')
    """
    pairs = _pairs(value)
    if step == "add":
        if len(pairs) != 1:
            raise RotationError("already holds two keys: promote or retire first")
        pairs.append((_next_kid(pairs), _secret()))
    elif step == "promote":
        if len(pairs) != 2:
            raise RotationError("holds one key: add a new one first")
        pairs.reverse()
    elif step == "retire":
        if len(pairs) != 2:
            raise RotationError("holds one key: nothing to retire")
        pairs = pairs[:1]
    return ",".join(f"{kid}:{secret}" for kid, secret in pairs)


def _edit(directory: Path, step: str, names: list[str]) -> dict[str, str]:
    """Apply ``step`` to the rings ``names`` in ``keys.json``: all or none (the file is only
    written when every ring accepts the step); the new rings by short name."""
    tokens, keys = stack_secrets(directory)
    new = dict(keys)
    for name in names:
        try:
            new[RINGS[name]] = rotate(keys[RINGS[name]], step)
        except RotationError as exc:
            raise RotationError(f"the {name} ring {exc}") from None
    write_private(directory / "keys.json", json.dumps({"tokens": tokens, "keys": new}, indent=2))
    return {name: new[RINGS[name]] for name in names}


def reload_stack(directory: Path, timeout_s: float = RELOAD_TIMEOUT_S) -> str:
    """Have the ``p13n up`` running ``directory`` restart its parts (SIGHUP) and wait until
    it has; what happened, in words. No running stack: nothing to restart."""
    from ops.stack import PARTS, StackError, load_info  # noqa: PLC0415 - it imports this module

    try:
        info = load_info(directory)
    except StackError:
        return "no stack runs there: the parts read the new rings when they start"
    if info.state != "running" or not info.up_pid:
        return "the stack is stopped: `p13n up` starts its parts with the new rings"
    before = info.reloads
    os.kill(info.up_pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = load_info(directory)
        if now.reloads > before and now.state == "running":
            return f"p13n up (pid {info.up_pid}) restarted {', '.join(PARTS)} with them"
        time.sleep(0.2)
    raise RotationError(f"p13n up (pid {info.up_pid}) did not reload within {timeout_s:.0f} s")


def _cmd_keys(args: argparse.Namespace) -> int:
    from ops.target import stack_dir  # noqa: PLC0415 - the CLI's own default

    directory = Path(args.stack or stack_dir())
    names = list(RINGS) if args.ring == "all" else [args.ring]
    if args.step == "show":
        keys = stack_keys(directory)
        if not keys:
            print(f"p13n keys: no keys.json in {directory}", file=sys.stderr)
            return 1
        for name in names:  # the bare ring for one (to pipe into a secret store)
            value = ring(keys[RINGS[name]])
            print(value if len(names) == 1 else f"{name} {value}")
        return 0
    try:
        rings = _edit(directory, args.step, names)
        print(f"{args.step}: " + "; ".join(f"{n} {_kids(v)}" for n, v in rings.items()))
        if not args.no_reload:
            print(reload_stack(directory))
    except (RotationError, OSError) as exc:
        print(f"p13n keys: {exc}", file=sys.stderr)
        return 1
    return 0


def _kids(value: str) -> str:
    """The ring without its secrets: "k2 (signs), k1 (accepted)"."""
    kids = [kid for kid, _ in _pairs(value)]
    return ", ".join(f"{k} ({'signs' if i == 0 else 'accepted'})" for i, k in enumerate(kids))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``keys``."""
    from ops.helptext import command  # noqa: PLC0415
    from ops.target import add_stack_arg  # noqa: PLC0415

    p = command(sub, "keys")
    p.add_argument(
        "step",
        choices=("show", "add", "promote", "retire"),
        help="show a ring; add a new key (accepted, not signing); promote it to sign; "
        "retire the old one",
    )
    p.add_argument(
        "--ring",
        choices=(*RINGS, "all"),
        default="all",
        help="which signing ring (default all; `show` of one prints the bare ring)",
    )
    p.add_argument("--no-reload", action="store_true", help="only edit keys.json; restart nothing")
    add_stack_arg(p)
    p.set_defaults(handler=_cmd_keys)
