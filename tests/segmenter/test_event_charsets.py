"""The validator's character-set checks say exactly what the published patterns say."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter import event

NAMES = sorted(event._CHARSETS)
ALPHABET = st.sampled_from(string.printable + "é\u00a0|{}\x00")


@settings(max_examples=3000, deadline=None)
@given(name=st.sampled_from(NAMES), value=st.text(ALPHABET, max_size=70))
def test_charsets_match_the_regular_expressions(name: str, value: str) -> None:
    rx = event.TEXT_FIELDS[name]
    assert event._matches(name, value, rx) == (len(value) <= 64 and rx.fullmatch(value) is not None)


@settings(max_examples=3000, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_charsets_accept_what_the_patterns_accept(name: str, data: st.DataObject) -> None:
    value = data.draw(st.from_regex(event.TEXT_FIELDS[name], fullmatch=True))
    assert event._matches(name, value, event.TEXT_FIELDS[name]) == (len(value) <= 64)
