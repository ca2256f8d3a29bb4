"""The validator's character-set checks say exactly what the published patterns say."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from segmenter import event
from segmenter.registry import VERSIONS, fits

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


# Every enum and text field of every version: ``registry.fits`` (the writers' version test)
# says what the field's own check says.
_FIELDS = sorted(
    {(v, name) for v, spec in VERSIONS.items() for name, f in spec.fields.items()
     if f.kind in ("enum", "text")}
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(where=st.sampled_from(_FIELDS), value=st.text(ALPHABET, max_size=70))
def test_fits_is_the_field_check(where: tuple[int, str], value: str) -> None:
    f = VERSIONS[where[0]].fields[where[1]]
    assert fits(f)(value) == event._accepts(f, value)


@settings(max_examples=2000, deadline=None)
@given(where=st.sampled_from(_FIELDS), data=st.data())
def test_fits_accepts_what_the_patterns_accept(where: tuple[int, str], data: st.DataObject) -> None:
    f = VERSIONS[where[0]].fields[where[1]]
    value = data.draw(st.sampled_from(f.values) if f.kind == "enum"
                      else st.from_regex(f.pattern, fullmatch=True))  # fmt: skip
    assert fits(f)(value)
