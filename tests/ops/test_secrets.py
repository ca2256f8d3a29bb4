"""The local stack signs console sessions with its own random key, not one from the source."""

from __future__ import annotations

import time

import httpx

from cache_keys import KeyRing, SigningKey
from ops.stack import StackInfo
from origin.auth import fingerprint
from origin.console import session

# The key the source once fell back to when P13N_CONSOLE_SIGNING was unset.
PUBLIC_KEY = KeyRing(SigningKey("dev", b"dev-console-secret-0123456789"), None)


def test_a_console_cookie_signed_with_a_public_key_is_refused(stack: StackInfo) -> None:
    forged = session.encode(
        session.new(time.time(), 3600, "admin", fingerprint(stack.admin_token)), PUBLIC_KEY
    )
    r = httpx.get(
        stack.origin_url + "/console/pipeline",
        cookies={"p13n_console": forged},
        timeout=10,
        follow_redirects=False,
    )
    assert r.status_code in (302, 303) and "/console/signin" in r.headers["location"]
