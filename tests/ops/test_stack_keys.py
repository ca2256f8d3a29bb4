"""``p13n up`` keeps its keys with its data (issue 16, item 8): a restart in the same stack
directory signs and hashes with the same keys, so what Redis kept stays valid."""

from __future__ import annotations

import json
import stat

import httpx

from ops.stack import KEY_NAMES, ROLES, Stack, stack_secrets
from origin.auth import fingerprint
from origin.console import session


def test_secrets_are_made_once_per_directory_owner_only(tmp_path) -> None:
    tokens, keys = stack_secrets(tmp_path)
    assert set(tokens) == set(ROLES) and set(keys) == set(KEY_NAMES)
    assert stack_secrets(tmp_path) == (tokens, keys)
    path = tmp_path / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"tokens": tokens, "keys": keys}
    other = tmp_path / "other"
    other.mkdir()
    assert stack_secrets(other)[1]["segment_sign"] != keys["segment_sign"]  # per directory


def test_a_restarted_stack_keeps_its_tokens_and_signing_keys(tmp_path) -> None:
    first = Stack(directory=tmp_path)
    info = first.start()
    try:
        tokens = dict(info.tokens)
        cookie = _console_cookie(info.origin_url, info.admin_token)
    finally:
        first.stop()
    second = Stack(directory=tmp_path)
    again = second.start()
    try:
        assert again.tokens == tokens
        # A console cookie signed before the restart verifies after it: same signing key.
        r = httpx.get(
            again.origin_url + "/console/pipeline",
            cookies={session.COOKIE: cookie},
            timeout=10,
            follow_redirects=False,
        )
        assert r.status_code == 200, r.text[:300]
    finally:
        second.stop()


def _console_cookie(origin_url: str, token: str) -> str:
    with httpx.Client(base_url=origin_url, timeout=10) as c:
        page = c.get("/console/signin")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        r = c.post("/console/signin", data={"csrf": csrf, "token": token})
        assert r.status_code == 303, r.text[:300]
        value = c.cookies.get(session.COOKIE)
    assert value and fingerprint(token) in value
    return value
