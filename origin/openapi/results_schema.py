"""The JSON Schema of an experiment's results document (``origin.admin.results.summarize``)."""

from __future__ import annotations

from typing import Any

__all__ = ["results"]

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_PAIR = {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}
_PAIR_OR_NULL = {"type": ["array", "null"], "items": _NUM, "minItems": 2, "maxItems": 2}
_COUNT = {"type": "integer", "description": "negative only in an inconsistent document"}


def _obj(props: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), **kw}


def _comparison() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "description": "a treatment against control on one metric (null while undefined); "
        "currency amounts in the major unit, rates as fractions",
        "properties": {
            "metric": {"type": "string"},
            "difference": _NUM,
            "ci": {**_PAIR, "description": "fixed-horizon interval at 1 - alpha"},
            "ci_adjusted": {**_PAIR, "description": "Bonferroni, 1 - alpha / treatments"},
            "relative": _NUM_OR_NULL,
            "relative_ci": _PAIR_OR_NULL,
            "p_value": _NUM,
            "p_adjusted": {**_NUM, "description": "Holm across the treatments"},
            "significant": {"type": "boolean"},
            "sequential": _obj(
                {"ci": _PAIR, "significant": {"type": "boolean"}},
                description="always-valid (mSPRT) confidence sequence: safe to peek",
            ),
            "mde_relative": _NUM_OR_NULL,
            "n_per_arm_for_5pct": {"type": ["integer", "null"]},
        },
    }


def _variant() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "variant": {"type": "string"},
            "exposures": _COUNT,
            "conversions": _COUNT,
            "conversion_rate": _NUM_OR_NULL,
            "revenue": _NUM,
            "orders": _COUNT,
            "revenue_per_exposed": _NUM_OR_NULL,
            "average_order_value": _NUM_OR_NULL,
            "carts": _COUNT,
            "add_to_cart_rate": _NUM_OR_NULL,
            "revenue_capped": _NUM,
            "metrics": {"type": "object", "additionalProperties": _NUM_OR_NULL},
            "lift": {
                "type": ["object", "null"],
                "properties": {
                    "vs": {"type": "string"},
                    "relative": _NUM_OR_NULL,
                    "ci95": _PAIR,
                },
            },
            "comparisons": {"type": "object", "additionalProperties": _comparison()},
        },
        "required": ["variant", "exposures", "conversions", "revenue", "orders", "metrics"],
    }


def _timeline() -> dict[str, Any]:
    lift = _obj({"difference": _NUM, "ci": _PAIR, "sequential_ci": _PAIR,
                 "relative": _NUM_OR_NULL})  # fmt: skip
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    return {
        "type": "array",
        "description": "per UTC day, cumulative counts and conversion difference from control",
        "items": _obj(
            {
                "day": {"type": "string", "format": "date"},
                "exposures": counts,
                "conversions": counts,
                "lift": {"type": "object", "additionalProperties": lift},
            }
        ),
    }


def _guardrails() -> dict[str, Any]:
    rate = _obj({"events": _COUNT, "of": _COUNT, "rate": _NUM_OR_NULL})
    cmp = {
        **_obj(
            {
                "difference": _NUM,
                "ci": {**_PAIR, "description": "fixed-horizon (Newcombe) at 1 - alpha"},
                "sequential_ci": {
                    **_PAIR,
                    "description": "always-valid, at alpha / (treatments x 3 guardrails)",
                },
                "worse": {"type": "boolean"},
            }
        ),
        "type": ["object", "null"],
    }
    names = ("degraded", "slow", "error")
    arm = {
        "type": "object",
        "required": ["variant", *names],
        "properties": {
            "variant": {"type": "string"},
            **dict.fromkeys(names, rate),
            "vs_control": {"type": "object", "additionalProperties": cmp},
        },
    }
    return _obj(
        {
            "arms": {"type": "array", "items": arm},
            "worse": {"type": "object", "additionalProperties": {"type": "array"}},
        },
        description="per arm: degraded = shopper-days with a degraded answer at the edge / "
        "exposed shopper-days; slow = origin answers over the latency budget / origin "
        "answers; error = origin answers degraded by an error / origin answers. worse: "
        "the treatment's rate minus control's has an always-valid interval above 0",
    )


def results() -> dict[str, Any]:
    """The results document."""
    metric = _obj(
        {
            "key": {"type": "string"},
            "name": {"type": "string"},
            "definition": {"type": "string"},
            "unit": {"enum": ["rate", "currency"]},
            "kind": {"enum": ["proportion", "mean", "ratio"]},
        }
    )
    srm = _obj(
        {
            "p_value": _NUM_OR_NULL,
            "mismatch": {"type": "boolean"},
            "threshold": _NUM,
            "method": {"enum": ["chi-square", "exact binomial"]},
            "zero_weight_exposures": {"type": "object", "additionalProperties": _COUNT},
        }
    )
    return {
        "type": "object",
        "properties": {
            "experiment": {"type": "string"},
            "bucket_version": {"type": "integer"},
            "results_from_ms": {"type": ["integer", "null"]},
            "variants": {"type": "array", "items": _variant()},
            "srm": srm,
            "bots_excluded": {"type": "boolean"},
            "reseeded_at_ms": {"type": ["integer", "null"]},
            "caveat": {"type": ["string", "null"]},
            "inconsistent": {
                "type": "array",
                "items": {"type": "string"},
                "description": "why the counters cannot describe real shoppers; when not "
                "empty, no interval or test is given",
            },
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "alpha": _NUM,
            "correction": _obj(
                {"method": {"enum": ["holm", "none"]}, "treatments": {"type": "integer"}}
            ),
            "metrics": {"type": "array", "items": metric},
            "revenue_cap": _obj(
                {"amount": _NUM_OR_NULL, "changed_during_experiment": {"type": "boolean"}}
            ),
            "timeline": _timeline(),
            "harm": {
                "type": "object",
                "description": "per treatment, the metrics whose always-valid interval lies "
                "below control",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
            "guardrails": _guardrails(),
            "as_of_ms": {"type": "integer"},
        },
        "required": ["experiment", "variants", "srm", "inconsistent", "metrics", "currency"],
    }
