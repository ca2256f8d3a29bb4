"""Shopper ids: the anonymous id and the shop's own customer id, and the one validator.

Two kinds of id name a shopper (docs/ARCHITECTURE.md, Identity)::

    "Q2hv0sZ9kP1fX7aLm3Tq_w"   anonymous: 22 URL-safe characters, minted by the origin into
                                the shopper cookie; the A/B unit
    "cust_48213", "12345"       customer: the shop's own id, as the shop's backend knows it,
                                checked against the configured pattern and length

A value of the anonymous shape is always read as an anonymous id; a shop whose own ids can
have that exact shape (22 characters of ``[A-Za-z0-9_-]``) configures a pattern with a prefix.
Every id, of either kind, must also fit the envelope ``segmenter.event.USER_RE`` (what the
event streams carry), so a configured pattern can narrow what is accepted, never widen it.

Neither kind ever reaches a cache key, a cache tag, an edge-cached URL or an edge log: the
edge sees hashed segments only. Where the design hashes a shopper id (stream partition,
erasure tombstones, A/B bucketing) a customer id is hashed the same way.

``ShopperIds`` is the one validator: the collector, ``?user=``, erasure, identity stitching
and the bulk import all ask it, so they accept exactly the same ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cache_keys import is_shopper_id
from segmenter.event import USER_RE, Event, Rejection

__all__ = ["DEFAULT_CUSTOMER_ID_MAX_LEN", "DEFAULT_CUSTOMER_ID_PATTERN", "Kind", "ShopperIds"]

# Letters, digits and ``_ . : -``, starting with a letter or digit: "cust_48213", "12345",
# a hex e-mail hash. No ``@``: a raw e-mail address is PII and is refused by default.
DEFAULT_CUSTOMER_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]*"
DEFAULT_CUSTOMER_ID_MAX_LEN = 64

Kind = Literal["anonymous", "customer"]


@dataclass(frozen=True, slots=True)
class ShopperIds:
    """The id policy: which strings name a shopper, and of which kind."""

    customer_pattern: str = DEFAULT_CUSTOMER_ID_PATTERN
    customer_max_len: int = DEFAULT_CUSTOMER_ID_MAX_LEN

    def __post_init__(self) -> None:
        if not 1 <= self.customer_max_len <= 64:
            raise ValueError("the customer id length limit must be between 1 and 64")
        try:
            re.compile(self.customer_pattern)
        except re.error as exc:
            raise ValueError(f"the customer id pattern does not compile: {exc}") from exc

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ShopperIds:
        """``P13N_CUSTOMER_ID_PATTERN`` and ``P13N_CUSTOMER_ID_MAX_LEN``; ValueError if bad."""
        raw_len = env.get("P13N_CUSTOMER_ID_MAX_LEN") or str(DEFAULT_CUSTOMER_ID_MAX_LEN)
        if not raw_len.isdigit():
            raise ValueError(f"P13N_CUSTOMER_ID_MAX_LEN={raw_len!r} is not an integer")
        pattern = env.get("P13N_CUSTOMER_ID_PATTERN") or DEFAULT_CUSTOMER_ID_PATTERN
        return cls(pattern, int(raw_len))

    def check_event(self, ev: Event) -> Event | Rejection:
        """The event when its shopper ids are of the accepted kinds, else why not: any id
        for ``user``; for an identify, a customer signing in and an anonymous id."""
        if ev.type == "identify":
            problem = self.problem(ev.user, "customer")
            if problem is None and (problem := self.problem(ev.anon, "anonymous")) is not None:
                return Rejection("anon", problem)
        else:
            problem = self.problem(ev.user)
        return ev if problem is None else Rejection("user", problem)

    def kind(self, value: object) -> Kind | None:
        """ "Q2hv0sZ9kP1fX7aLm3Tq_w" -> "anonymous", "cust_48213" -> "customer", "a b" -> None."""
        if is_shopper_id(value):
            return "anonymous"
        if self.is_customer(value):
            return "customer"
        return None

    def is_customer(self, value: object) -> bool:
        """Whether ``value`` is a valid customer id (whatever its shape)."""
        return (
            isinstance(value, str)
            and len(value) <= self.customer_max_len
            and USER_RE.fullmatch(value) is not None
            and re.fullmatch(self.customer_pattern, value) is not None
        )

    def describe(self) -> str:
        """What a valid id looks like, for error messages."""
        return (
            "a 22-character anonymous shopper id or a customer id of at most "
            f"{self.customer_max_len} characters matching {self.customer_pattern}"
        )

    def problem(self, value: object, want: Kind | None = None) -> str | None:
        """None when ``value`` is an id (of kind ``want``, if given), else what is wrong."""
        if want == "anonymous":
            return None if is_shopper_id(value) else "must be a 22-character anonymous shopper id"
        if want == "customer":
            if self.kind(value) == "customer":
                return None
            return (
                f"must be a customer id of at most {self.customer_max_len} characters "
                f"matching {self.customer_pattern} (not an anonymous id)"
            )
        return None if self.kind(value) else f"must be {self.describe()}"
