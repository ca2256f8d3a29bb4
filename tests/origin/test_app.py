"""App skeleton: health, readiness against a real Redis, problem+json, settings."""

from __future__ import annotations

import pytest

from origin.app import create_app
from origin.settings import SECRET_SETTINGS, Settings, SettingsError
from tests.support.asgi import app_client


@pytest.mark.anyio
async def test_healthz_and_readyz_with_real_redis(redis_url: str) -> None:
    async with app_client(create_app(Settings(redis_url=redis_url))) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True


@pytest.mark.anyio
async def test_readyz_without_redis_is_not_ready_but_healthz_is_up() -> None:
    async with app_client(create_app(Settings(redis_url=None))) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["redis"] == "not configured"


@pytest.mark.anyio
async def test_unknown_route_is_problem_json() -> None:
    async with app_client(create_app(Settings())) as client:
        r = await client.get("/nope")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["status"] == 404 and body["instance"] == "/nope"


SECRETS = {
    "P13N_SEGMENT_KEY": "segment-hash-key-0123456789",
    **{name: "k1:secret-0123456789abcdef" for name in SECRET_SETTINGS},
}


def test_settings_from_env() -> None:
    s = Settings.from_env(
        {
            **SECRETS,
            "P13N_REDIS_URL": "redis://127.0.0.1:7000/0",
            "P13N_ADMIN_TOKENS": "admin:aaaaaaaaaaaaaaaaaaaa,merchandiser:bbbbbbbbbbbbbbbbbbbb",
            "P13N_SEGMENT_SIGNING": "k2:new-secret-0123456789,k1:old-secret-0123456789",
            "P13N_PARTITIONS": "4",
            "P13N_EGRESS_PRICE_PER_GB": "0.02",
        }
    )
    assert s.redis_url == "redis://127.0.0.1:7000/0" and s.partitions == 4
    assert s.egress_price_per_gb == 0.02 and Settings.from_env(SECRETS).egress_price_per_gb == 0.09
    assert s.admin_tokens == {"a" * 20: "admin", "b" * 20: "merchandiser"}
    assert s.segment_keys.current.kid == "k2" and s.segment_keys.previous is not None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"P13N_PARTITIONS": "eight"}, "P13N_PARTITIONS"),
        ({"P13N_ADMIN_TOKENS": "root:aaaaaaaaaaaaaaaaaaaa"}, "P13N_ADMIN_TOKENS"),
        ({"P13N_ADMIN_TOKENS": "admin:short"}, "P13N_ADMIN_TOKENS"),
        ({"P13N_SEGMENT_SIGNING": "nokid"}, "P13N_SEGMENT_SIGNING"),
        ({"P13N_SEGMENT_SIGNING": "k:short"}, "P13N_SEGMENT_SIGNING"),
        ({"P13N_EGRESS_PRICE_PER_GB": "cheap"}, "P13N_EGRESS_PRICE_PER_GB"),
        ({"P13N_EGRESS_PRICE_PER_GB": "-0.1"}, "P13N_EGRESS_PRICE_PER_GB"),
    ],
)
def test_bad_settings_name_the_variable(env, needle) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env({**SECRETS, **env})


@pytest.mark.parametrize("name", ["P13N_SEGMENT_KEY", *SECRET_SETTINGS])
def test_secrets_have_no_default_outside_a_trusted_local_run(name: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != name}
    with pytest.raises(SettingsError, match=f"{name} is not set"):
        Settings.from_env(env)


def test_a_trusted_local_run_gets_random_signing_keys_never_a_public_one() -> None:
    a = Settings.from_env({"P13N_TRUSTED_LOCAL": "1"})
    b = Settings.from_env({"P13N_TRUSTED_LOCAL": "1"})
    for ring_a, ring_b in [
        (a.console_keys, b.console_keys),
        (a.segment_keys, b.segment_keys),
        (a.context_keys, b.context_keys),
        (Settings().console_keys, Settings().console_keys),
    ]:
        assert ring_a.current.secret != ring_b.current.secret
        assert not ring_a.current.secret.startswith(b"dev-")
