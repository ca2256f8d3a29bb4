"""Structured Field Dictionaries (RFC 8941 §4.2.2), as far as ``CDN-Cache-Control`` needs.

    >>> parse_dictionary('max-age=60, no-store, foo="a b";p=1')
    {'max-age': 60, 'no-store': True, 'foo': 'a b'}

Parameters are parsed and dropped (RFC 9213 says to ignore them); inner lists come back as
Python lists; byte sequences as bytes; tokens as ``Token``. Anything that is not a valid
Dictionary raises ``ValueError``: RFC 9213 §2.1 has the cache ignore the whole field then.
"""

from __future__ import annotations

import base64
import string
from decimal import Decimal

__all__ = ["Item", "Token", "parse_dictionary"]

_LCALPHA = frozenset(string.ascii_lowercase)
_KEY_CHARS = _LCALPHA | frozenset(string.digits + "_-.*")
_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~:/")
_OWS = " \t"


class Token(str):
    """An sf-token (distinct from an sf-string)."""


Item = int | Decimal | str | bytes | bool | list[object]


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def key(self) -> str:
        start = self.i
        if self.peek() not in _LCALPHA and self.peek() != "*":
            raise ValueError(f"bad key at {self.i}")
        while self.peek() and self.peek() in _KEY_CHARS:
            self.i += 1
        return self.s[start : self.i]

    def params(self) -> None:
        while self.peek() == ";":
            self.i += 1
            while self.peek() == " ":
                self.i += 1
            self.key()
            if self.peek() == "=":
                self.i += 1
                self.bare_item()

    def item_or_inner_list(self) -> Item:
        if self.peek() == "(":
            self.i += 1
            members: list[object] = []
            while True:
                while self.peek() == " ":
                    self.i += 1
                if self.peek() == ")":
                    self.i += 1
                    self.params()
                    return members
                members.append(self.bare_item())
                self.params()
                if self.peek() not in (" ", ")"):
                    raise ValueError("bad inner list")
        value = self.bare_item()
        self.params()
        return value

    def bare_item(self) -> Item:
        ch = self.peek()
        if ch == "-" or ch.isdigit():
            return self.number()
        if ch == '"':
            return self.string()
        if ch == "*" or (ch and ch in string.ascii_letters):
            start = self.i
            self.i += 1
            while self.peek() and self.peek() in _TCHAR:
                self.i += 1
            return Token(self.s[start : self.i])
        if ch == ":":
            end = self.s.find(":", self.i + 1)
            if end < 0:
                raise ValueError("unterminated byte sequence")
            raw, self.i = self.s[self.i + 1 : end], end + 1
            return base64.b64decode(raw, validate=True)
        if ch == "?" and self.s[self.i + 1 : self.i + 2] in ("0", "1"):
            self.i += 2
            return self.s[self.i - 1] == "1"
        raise ValueError(f"bad item at {self.i}")

    def number(self) -> int | Decimal:
        start = self.i
        if self.peek() == "-":
            self.i += 1
        digits_start = self.i
        while self.peek().isdigit() or (self.peek() == "." and "." not in self.s[start : self.i]):
            self.i += 1
        text = self.s[start : self.i]
        whole, dot, frac = self.s[digits_start : self.i].partition(".")
        if not whole.isdigit():
            raise ValueError("bad number")
        if not dot:
            if len(whole) > 15:
                raise ValueError("integer too long")
            return int(text)
        if len(whole) > 12 or not 1 <= len(frac) <= 3 or not frac.isdigit():
            raise ValueError("bad decimal")
        return Decimal(text)

    def string(self) -> str:
        self.i += 1
        out = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            self.i += 1
            if ch == "\\":
                nxt = self.peek()
                if nxt not in ('"', "\\"):
                    raise ValueError("bad escape")
                out.append(nxt)
                self.i += 1
            elif ch == '"':
                return "".join(out)
            elif not " " <= ch <= "~":
                raise ValueError("bad string character")
            else:
                out.append(ch)
        raise ValueError("unterminated string")


def parse_dictionary(text: str) -> dict[str, Item]:
    """An sf-dictionary; ``ValueError`` when ``text`` is not one (RFC 8941 §4.2.2)."""
    p = _Parser(text.strip(" "))
    out: dict[str, Item] = {}
    while p.peek():
        key = p.key()
        if p.peek() == "=":
            p.i += 1
            out[key] = p.item_or_inner_list()
        else:
            out[key] = True
            p.params()
        while p.peek() and p.peek() in _OWS:
            p.i += 1
        if not p.peek():
            break
        if p.peek() != ",":
            raise ValueError(f"expected ',' at {p.i}")
        p.i += 1
        while p.peek() and p.peek() in _OWS:
            p.i += 1
        if not p.peek():
            raise ValueError("trailing comma")
    return out
