"""Settings from the Worker env / the environment."""

from __future__ import annotations

import pytest

from edge.errors import SettingsError
from edge.settings import parse_keyring, settings_from_env

BASE = {"ORIGIN_URL": "https://origin.test/", "SEGMENT_KEYS": "k2:current-secret-0123456789"}


def test_defaults() -> None:
    s = settings_from_env(BASE)
    assert s.origin_url == "https://origin.test"
    assert s.collector_url == "https://origin.test"
    assert s.context_keys is s.segment_keys
    assert s.locales == ("en-us",)
    assert (s.origin_timeout_ms, s.segment_refresh_ms, s.cache_name) == (800, 60, "p13n-edge")


def test_everything_set() -> None:
    s = settings_from_env(
        {
            **BASE,
            "SEGMENT_KEYS": "k2:current-secret-0123456789,k1:previous-secret-012345",
            "CONTEXT_KEYS": "c1:context-secret-0123456789",
            "COLLECTOR_URL": "http://127.0.0.1:8081",
            "LOCALES": "de-DE, en-us",
            "DEFAULT_ITEMS": '[{"item": "GIFT-1", "score": 1}]',
            "ORIGIN_TIMEOUT_MS": "250",
        }
    )
    assert s.segment_keys.previous is not None and s.segment_keys.previous.kid == "k1"
    assert s.context_keys.current.kid == "c1"
    assert s.locales == ("de-de", "en-us")
    assert [i.item for i in s.default_items] == ["GIFT-1"]
    assert s.origin_timeout_ms == 250


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"SEGMENT_KEYS": "k:0123456789abcdef"}, "ORIGIN_URL"),
        ({"ORIGIN_URL": "https://o.test"}, "SEGMENT_KEYS"),
        ({**BASE, "ORIGIN_URL": "ftp://o.test"}, "ORIGIN_URL"),
        ({**BASE, "ORIGIN_URL": "https://o.test/path"}, "ORIGIN_URL"),
        ({**BASE, "SEGMENT_KEYS": "nocolon"}, "SEGMENT_KEYS"),
        ({**BASE, "SEGMENT_KEYS": "k:short"}, "SEGMENT_KEYS"),
        ({**BASE, "ORIGIN_TIMEOUT_MS": "soon"}, "ORIGIN_TIMEOUT_MS"),
        ({**BASE, "ORIGIN_TIMEOUT_MS": "0"}, "ORIGIN_TIMEOUT_MS"),
        ({**BASE, "LOCALES": "english"}, "LOCALES"),
        ({**BASE, "DEFAULT_ITEMS": "{}"}, "DEFAULT_ITEMS"),
        ({**BASE, "DEFAULT_ITEMS": '[{"item": "bad id"}]'}, "DEFAULT_ITEMS"),
        ({**BASE, "CACHE_NAME": "has space"}, "CACHE_NAME"),
    ],
)
def test_bad_settings_name_the_variable_never_the_value(env, name) -> None:
    with pytest.raises(SettingsError) as info:
        settings_from_env(env)
    assert info.value.name == name
    assert "0123456789" not in str(info.value)


def test_keyring_holds_one_or_two_keys() -> None:
    with pytest.raises(SettingsError):
        parse_keyring("a:0123456789abcdef,b:0123456789abcdef,c:0123456789abcdef", "K")
