"""What tests/docs/test_runbook.py checks beyond an exit code, for two procedures: the Worker's
secrets (``npx wrangler secret put``, against a test double) and the key rotation (from a
shopper's side, against the real stack)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cache_keys import hash_segment, sign_segment
from cache_keys.wire import SEGMENT_COOKIE, SHOPPER_COOKIE
from edge.settings import EdgeSettings, parse_keyring
from ops.keyring import RINGS, ring, stack_keys
from tests.support.timing import scaled

ROOT = Path(__file__).resolve().parents[2]
# The Worker's secrets: its settings' fields marked secret; each names its stack ring.
WORKER_SECRETS = {
    f.metadata["env"] for f in dataclasses.fields(EdgeSettings) if f.metadata.get("secret")
}
STACK_RING = {"SEGMENT_KEYS": "segment", "CONTEXT_KEYS": "context"}

# A stand-in for `npx` (only `npx wrangler …` is ever run through it): the Cloudflare platform
# cannot run here. It records its arguments and standard input; the test checks them.
NPX = """#!{python}
import json, os, sys
with open({record!r}, "a") as out:
    out.write(json.dumps({{"argv": sys.argv[1:], "stdin": sys.stdin.read()}}) + "\\n")
"""


@dataclass
class WranglerDouble:
    """``npx`` first on PATH, recording each call in ``record``."""

    bin_dir: Path
    record: Path = field(init=False)
    checked: int = 0

    def __post_init__(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.record = self.bin_dir / "wrangler-calls.jsonl"
        npx = self.bin_dir / "npx"
        npx.write_text(NPX.format(python=sys.executable, record=str(self.record)))
        npx.chmod(0o755)

    def check_last(self, stack_keys: dict[str, str], where: str) -> str:
        """The call the command just made: ``wrangler secret put NAME`` for a secret of the
        Worker (not a plain [vars] setting of wrangler.toml), given on standard input a ring
        the Worker parses, equal to the stack's ring of that name now. The secret's name."""
        calls = self.record.read_text().splitlines() if self.record.exists() else []
        assert len(calls) == self.checked + 1, f"{where}: wrangler called {calls[self.checked :]}"
        self.checked += 1
        call = json.loads(calls[-1])
        assert call["argv"][:3] == ["wrangler", "secret", "put"], f"{where}: {call['argv']}"
        assert len(call["argv"]) == 4, f"{where}: one secret name, no more: {call['argv']}"
        name = call["argv"][3]
        assert name in WORKER_SECRETS, f"{where}: {name} is no secret of the Worker"
        plain = tomllib.loads((ROOT / "wrangler.toml").read_text()).get("vars", {})
        assert name not in plain, f"{where}: {name} is a plain var in wrangler.toml"
        parse_keyring(call["stdin"], name)  # raises SettingsError when the Worker would
        want = ring(stack_keys[RINGS[STACK_RING[name]]])
        assert call["stdin"].strip() == want, f"{where}: {name} is not the stack's ring"
        return str(name)


def _kid(token: str) -> str:
    return token.split(".")[3]  # 1.<hseg>.<expires_at_s>.<kid>.<sig> (cache_keys.tokens)


@dataclass
class Rotation:
    """A shopper's segment cookie from before the rotation, followed through its steps."""

    edge_url: str
    stack_dir: Path
    old: dict[str, str] = field(default_factory=dict)

    def rail(self, cookies: dict[str, str] | None = None) -> httpx.Response:
        r = httpx.get(self.edge_url + "/p13n/v1/rail/home?k=3", cookies=cookies, timeout=10)
        assert r.status_code == 200, r.text
        return r

    def segment_cookies(self, cookies: dict[str, str] | None = None) -> dict[str, str]:
        """A shopper's cookies once the edge has set a segment cookie. A new shopper gets
        its id first; the edge fetches a segment for a known one (within its refresh
        budget, which a loaded machine may miss: asked again until a deadline)."""
        jar = dict(cookies or {})
        deadline = time.monotonic() + scaled(30)
        while True:
            r = self.rail(jar)
            jar.update(r.cookies)
            if r.cookies.get(SEGMENT_COOKIE.name):
                return jar
            assert time.monotonic() < deadline, f"the edge set no segment cookie: {r.headers}"
            time.sleep(0.2)

    def new_cookie_kid(self) -> str:
        """The key a new shopper's segment cookie is signed with."""
        return _kid(self.segment_cookies()[SEGMENT_COOKIE.name])

    def old_cookie_accepted(self) -> bool:
        """Whether the edge verifies the old cookie: it sets no new one when it does (asked
        three times: a refused cookie is replaced, unless the refresh budget is missed)."""
        return all(self.rail(self.old).cookies.get(SEGMENT_COOKIE.name) is None for _ in range(3))

    def cookie(self, keys: str, sid: str) -> dict[str, str]:
        """A known shopper's cookies: its id and a segment cookie valid for a day, signed
        with the ring ``keys`` as the origin signs one (an unknown shopper's lasts minutes:
        the edge would refresh it whatever its key)."""
        hseg = hash_segment(
            "returning|grocery|mid", stack_keys(self.stack_dir)["segment_hash"].encode()
        )
        token = sign_segment(hseg, int(time.time()) + 86400, parse_keyring(keys, "test"))
        return {SHOPPER_COOKIE.name: sid, SEGMENT_COOKIE.name: token}

    def before(self) -> None:
        sid = self.rail().cookies[SHOPPER_COOKIE.name]
        self.old = self.cookie(ring(stack_keys(self.stack_dir)[RINGS["segment"]]), sid)
        assert _kid(self.old[SEGMENT_COOKIE.name]) == "k1"
        # The check itself: the stack's cookie is kept, one with a key it never had replaced.
        assert self.old_cookie_accepted()
        forged = self.cookie("k1:not-the-stacks-key", sid)
        assert self.segment_cookies(forged)[SEGMENT_COOKIE.name] != forged[SEGMENT_COOKIE.name]

    def after(self, step: str) -> None:
        """After ``p13n keys STEP`` (the stack has restarted its parts)."""
        signer = {"add": "k1", "promote": "k2", "retire": "k2"}[step]
        assert self.new_cookie_kid() == signer, step
        if step == "retire":  # refused: replaced by a cookie signed with the new key
            assert _kid(self.segment_cookies(self.old)[SEGMENT_COOKIE.name]) == "k2"
        else:
            assert self.old_cookie_accepted(), step
