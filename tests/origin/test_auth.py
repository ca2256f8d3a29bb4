"""Admin roles: 401 without or with an unknown token, 403 with the wrong role, admin does all."""

from __future__ import annotations

import pytest

from tests.support.data import ADMIN, EXPER, MERCH, SERVICE, TOKENS, bearer

pytestmark = pytest.mark.anyio

# (method, path, json, the role that may) for one endpoint of each group
CASES = [
    ("get", "/v1/admin/experiments", None, "experimenter"),
    ("get", "/v1/admin/experiments/e/results", None, "experimenter"),
    ("post", "/v1/admin/invalidations", {"tags": ["cat:dairy"]}, "merchandiser"),
    ("get", "/v1/admin/catalog/sku-1", None, "merchandiser"),
    ("delete", "/v1/admin/shoppers/AAAAAAAAAAAAAAAAAAAAAA", None, "admin"),
    ("get", "/v1/admin/audit", None, "admin"),
    ("get", "/v1/admin/tokens", None, "admin"),
]
BY_ROLE = {role: token for token, role in TOKENS.items()}


async def call(client, method, path, body, headers):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return await client.request(method.upper(), path, **kwargs)


@pytest.mark.parametrize(("method", "path", "body", "role"), CASES)
async def test_roles(client, method, path, body, role):
    r = await call(client, method, path, body, {})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = await call(client, method, path, body, bearer("not-a-real-token-000000"))
    assert r.status_code == 401
    r = await call(client, method, path, body, {"Authorization": "Basic abc"})
    assert r.status_code == 401
    for other in ("merchandiser", "experimenter", "service"):
        if other != role:
            r = await call(client, method, path, body, bearer(BY_ROLE[other]))
            assert r.status_code == 403, (other, r.text)
            assert r.json()["role"] == other
    for allowed in {role, "admin"}:
        r = await call(client, method, path, body, bearer(BY_ROLE[allowed]))
        assert r.status_code not in (401, 403), (allowed, r.text)


async def test_tokens_lists_roles_by_fingerprint_never_the_token(client):
    r = await client.get("/v1/admin/tokens", headers=bearer(ADMIN))
    roles = sorted(t["role"] for t in r.json()["tokens"])
    assert roles == ["admin", "experimenter", "merchandiser", "service"]
    for token in (ADMIN, EXPER, MERCH, SERVICE):
        assert token not in r.text
