"""``p13n up`` keeps its keys with its data (issue 16, item 8): a restart in the same stack
directory signs and hashes with the same keys, so what Redis kept stays valid."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import msgpack
import pytest
import redis

from cache_keys import hash_segment
from ops.cli import main
from ops.stack import KEY_NAMES, ROLES, Stack, StackInfo, stack_keys, stack_secrets
from origin.auth import fingerprint
from origin.console import session
from segmenter.schema import Keys
from segmenter.settings import DEV_SEGMENT_KEY, ProcessorSettings, SettingsError


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


# -- the CLI takes the stack's keys, never a public default (issue 19, item 1) --------------
def test_the_processor_refuses_to_hash_without_a_key_outside_trusted_code() -> None:
    with pytest.raises(SettingsError, match="P13N_SEGMENT_KEY is not set"):
        ProcessorSettings.from_env({})
    assert ProcessorSettings.from_env({"P13N_TRUSTED_LOCAL": "1"}).segment_key == DEV_SEGMENT_KEY
    # A command that never hashes (reading the lake) needs no key and gets none to hash with.
    assert ProcessorSettings.from_env({}, hashes=False).segment_key == b""


def test_segmenter_lists_without_a_stack_or_key_is_an_error_naming_the_setting(
    capsys, monkeypatch, tmp_path
) -> None:
    for name in ("P13N_SEGMENT_KEY", "P13N_TRUSTED_LOCAL", "P13N_STACK"):
        monkeypatch.delenv(name, raising=False)
    code = main(["segmenter", "lists", "--stack", str(tmp_path), "--redis-url", "redis://x:1/0"])
    err = capsys.readouterr().err
    assert code == 2 and "P13N_SEGMENT_KEY is not set" in err and len(err.splitlines()) == 1


def test_segmenter_lists_and_hseg_use_the_stacks_segment_key(
    capsys, monkeypatch, stack: StackInfo
) -> None:
    for name in ("P13N_SEGMENT_KEY", "P13N_TRUSTED_LOCAL", "P13N_STACK"):
        monkeypatch.delenv(name, raising=False)
    key = stack_keys(Path(stack.directory))["segment_hash"].encode()
    assert main(["segmenter", "lists", "--stack", stack.directory]) == 0
    assert capsys.readouterr().out.startswith("segments=")
    r = redis.Redis.from_url(stack.redis_url)
    try:
        registry = r.hgetall(Keys().list_registry)
    finally:
        r.close()
    assert registry
    for hseg, raw in registry.items():  # every id is the stack's hash, none a dev-key one
        assert hash_segment(msgpack.unpackb(raw)["segment"], key) == hseg.decode()
    monkeypatch.setenv("P13N_STACK", stack.directory)
    assert main(["hseg", "returning|grocery|mid"]) == 0
    assert capsys.readouterr().out.strip() == hash_segment("returning|grocery|mid", key)
