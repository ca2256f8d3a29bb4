"""The one problem+json shape: every tier's problems look alike (RFC 9457)."""

from __future__ import annotations

import json

from cache_keys.wire import PROBLEM_CONTENT_TYPE, PROBLEM_HEADERS, PROBLEM_TYPE_BASE, Problem


def test_members_type_convention_and_extensions() -> None:
    p = Problem(409, "conflict", "Conflict", "already exists", "/v1/x", {"field": "key"})
    assert json.loads(p.encode()) == {
        "type": PROBLEM_TYPE_BASE + "conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "already exists",
        "instance": "/v1/x",
        "field": "key",
    }
    assert p.type.startswith("https://") and "about:blank" not in p.type


def test_no_instance_member_without_one_and_never_stored() -> None:
    assert "instance" not in Problem(502, "origin-unavailable", "Bad gateway", "down").to_json()
    assert dict(PROBLEM_HEADERS) == {
        "content-type": PROBLEM_CONTENT_TYPE,
        "cache-control": "no-store",
    }
