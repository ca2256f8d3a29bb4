"""Every contract vector, in CPython (the Pyodide tests run the same cases)."""

from __future__ import annotations

import pytest

from tests.support.data import VECTOR_DIR
from tests.vectors.check import cases

CASES = list(cases(VECTOR_DIR))


def test_every_contract_has_vectors() -> None:
    names = " ".join(name for name, _ in CASES)
    for contract in (
        "hash",
        "getBucketRange",
        "chooseVariation",
        "inNamespace",
        "getEqualWeights",
        "hseg",
        "sign",
        "verify",
        "key",
        "tag",
        "context",
        "purge",
        "edge config",
        "segment grant",
        "rail",
        "assign",
        "exposure id",
        "merch rule",
    ):
        assert contract in names
    assert len(CASES) > 100


@pytest.mark.parametrize(("name", "check"), CASES, ids=[n for n, _ in CASES])
def test_vector(name: str, check) -> None:
    problem = check()
    assert problem is None, problem
