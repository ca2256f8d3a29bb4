"""Identity stitching at ingress: the sign-in link an ``identify`` event leaves, and how later
events of the anonymous id are credited to the customer.

    identify {user: "cust_48213", anon: "Q2hv…", session: "s1"}
        -> link  P:{u:Q2hv…}:link = "s1|cust_48213"   (a day)
           index P:{u:c.…}:anons  += "Q2hv…"          (erasing the customer erases it too)
           index P:{u:Q2hv…}:signins += "cust_48213"  (erasing the anonymous id alone
                                                      removes it from the customer's records)
    view {user: "Q2hv…", session: "s1"}   -> view {user: "cust_48213", session: "s1"}
    view {user: "Q2hv…", session: "s2"}   -> unchanged: another session stays anonymous

The rule is per session: a shared device whose next visitor does not sign in is not credited
to the last customer. The features the anonymous id gathered before the sign-in are merged by
the processor when it applies the identify (``segmenter.features``), exactly once. The
collector and the bulk import both write links here, so they behave the same.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from segmenter.event import Event
from segmenter.schema import LINK_TTL_S, SHOPPER_TTL_S, Keys

__all__ = ["credit", "parse_link", "stage_link"]


def stage_link(pipe: Any, keys: Keys, ev: Event) -> None:
    """Queue the writes of an identify event's link on a (non-transactional) pipeline."""
    pipe.set(keys.link(ev.anon), f"{ev.session}|{ev.user}", ex=LINK_TTL_S)
    pipe.sadd(keys.anons(ev.user), ev.anon)
    pipe.expire(keys.anons(ev.user), SHOPPER_TTL_S)
    pipe.sadd(keys.signins(ev.anon), ev.user)
    pipe.expire(keys.signins(ev.anon), SHOPPER_TTL_S)


def parse_link(raw: bytes | str | None) -> tuple[str, str] | None:
    """b"s1|cust_48213" -> ("s1", "cust_48213"); None for no link."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    session, sep, customer = text.partition("|")
    return (session, customer) if sep and customer else None


def credit(ev: Event, link: tuple[str, str] | None) -> Event:
    """The event as stored: credited to the customer when its anonymous shopper signed in
    during this session, else unchanged."""
    if link is None or ev.type == "identify" or ev.session != link[0]:
        return ev
    return replace(ev, user=link[1])
