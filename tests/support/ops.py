"""Talking to a running stack (``p13n up``) the way an operator's script would."""

from __future__ import annotations

from typing import Any

import httpx

from ops.stack import StackInfo

__all__ = ["api"]


def api(info: StackInfo, method: str, path: str, **kw: Any) -> httpx.Response:
    """``method path`` on the stack's origin with its admin token."""
    headers = {"authorization": f"Bearer {info.tokens['admin']}"}
    return httpx.request(method, info.origin_url + path, headers=headers, timeout=5, **kw)
