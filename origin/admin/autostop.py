"""The guardrails' auto-stop: one origin process per round (``SET NX PX``) reads the results of
every running experiment created with ``"auto_stop": true`` and stops it, audited as
``experiment.auto_stop`` with the arm, the guardrail and the figures, when a treatment is
worse than control by the always-valid test (``origin.admin.guardrails``)."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from origin.admin import experiments, results
from origin.admin.base import ADMIN_BUDGET_S, now_ms
from origin.admin.guardrails import read_origin_counts, worst
from origin.state import AppState

__all__ = ["check_auto_stop"]

LOG = logging.getLogger("p13n.origin.guardrails")


async def _claim(state: AppState) -> bool:
    """One origin process per round: the one whose ``SET NX PX`` wins."""
    ms = max(1, state.settings.guardrail_check_s) * 1000
    won = await state.store.run(
        "guardrails_claim",
        state.store.client.set(state.keys.guardrail_lock, b"1", nx=True, px=ms),
        budget_s=ADMIN_BUDGET_S,
    )
    return bool(won)


async def check_auto_stop(state: AppState) -> list[dict[str, Any]]:
    """Stop every running auto-stop experiment with a worse treatment (this round's claimer
    only); the stopped experiments."""
    raw = await state.store.run(
        "guardrails_exps", state.store.client.hvals(state.keys.experiments),
        budget_s=ADMIN_BUDGET_S,
    )  # fmt: skip
    watched = [d for d in map(orjson.loads, raw) if d.get("auto_stop") and d["status"] == "running"]
    if not watched or not await _claim(state):  # nothing written while nothing is watched
        return []
    stopped = []
    for exp in watched:
        key = exp["key"]
        doc = results.summarize(exp, await results.read_counts(state, key),
                                origin=await read_origin_counts(state, key))  # fmt: skip
        found = worst(doc["guardrails"])
        if found is None:
            continue
        variant, guardrail, figures = found
        reason = {"variant": variant, "guardrail": guardrail, "figures": figures,
                  "ms": now_ms(state)}  # fmt: skip
        LOG.warning("auto-stop %s: %s worse on %s", key, variant, guardrail)
        stopped.append(await experiments.auto_stop(state, key, reason))
    return stopped
