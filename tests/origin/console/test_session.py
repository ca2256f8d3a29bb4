"""Console sessions: signed, expiring, tamper-evident cookies; per-session CSRF tokens."""

from __future__ import annotations

from cache_keys import KeyRing, SigningKey
from origin.auth import fingerprint
from origin.console import session as sessions
from origin.settings import Settings
from tests.support.data import EXPER, MERCH, TOKENS

RING = KeyRing(SigningKey("c1", b"console-test-secret-0123456789"))
OTHER = KeyRing(SigningKey("c1", b"another-secret-0123456789abcdef"))
NOW = 1_764_000_000


def test_round_trip_and_expiry() -> None:
    s = sessions.new(NOW, 3600, "experimenter", fingerprint(EXPER))
    value = sessions.encode(s, RING)
    assert EXPER not in value and ".experimenter." in value
    assert sessions.decode(value, RING, NOW + 10) == s
    assert sessions.decode(value, RING, NOW + 3600) is None  # expired
    anonymous = sessions.new(NOW, 60)
    assert sessions.decode(sessions.encode(anonymous, RING), RING, NOW) == anonymous
    assert not anonymous.signed_in


def test_forged_or_altered_cookies_are_ignored() -> None:
    value = sessions.encode(sessions.new(NOW, 3600, "experimenter", fingerprint(EXPER)), RING)
    assert sessions.decode(value.replace(".experimenter.", ".admin."), RING, NOW) is None
    assert sessions.decode(value, OTHER, NOW) is None
    for junk in ("", "c1", "x" * 500, "c1.a.b.c.d.e.f", value[:-2] + "AA"):
        assert sessions.decode(junk, RING, NOW) is None


def test_csrf_token_is_bound_to_the_session() -> None:
    a, b = sessions.new(NOW, 60), sessions.new(NOW, 60)
    token = sessions.csrf_token(a, RING)
    assert sessions.csrf_ok(a, token, RING)
    assert not sessions.csrf_ok(b, token, RING)
    assert not sessions.csrf_ok(None, token, RING)
    assert not sessions.csrf_ok(a, None, RING) and not sessions.csrf_ok(a, "é", RING)


def test_a_session_stands_for_a_configured_token_with_the_same_role() -> None:
    settings = Settings(admin_tokens=dict(TOKENS))
    s = sessions.new(NOW, 60, "experimenter", fingerprint(EXPER))
    assert sessions.token_for(s, settings) == EXPER
    assert sessions.token_for(sessions.new(NOW, 60, "admin", fingerprint(EXPER)), settings) is None
    moved = Settings(admin_tokens={EXPER: "merchandiser", MERCH: "merchandiser"})
    assert sessions.token_for(s, moved) is None  # role changed: signed out
    assert sessions.token_for(s, Settings(admin_tokens={})) is None  # token removed
