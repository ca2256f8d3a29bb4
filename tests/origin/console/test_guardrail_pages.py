"""The console's guardrails: the form's auto-stop checkbox and the results page's table."""

from __future__ import annotations

import pytest

from tests.origin.console.test_pages import sign_in
from tests.support.data import EXPER, KEYS, bearer

pytestmark = pytest.mark.anyio


async def test_auto_stop_is_set_from_the_form_and_the_results_show_the_guardrails(
    client, redis_client
):
    csrf = await sign_in(client, EXPER)
    form = {"csrf": csrf, "key": "rail-g", "variations": "control\nfast", "weights": "0.5, 0.5",
            "coverage": "1", "routes": "home", "auto_stop": "on"}  # fmt: skip
    assert (await client.post("/console/experiments/new", data=form)).status_code == 303
    exp = (await client.get("/v1/admin/experiments/rail-g", headers=bearer(EXPER))).json()
    assert exp["auto_stop"] is True
    page = await client.get("/console/experiments/rail-g")
    assert 'name="auto_stop" type="checkbox" checked' in page.text
    edit = {k: v for k, v in form.items() if k not in ("key", "auto_stop")}
    r = await client.post("/console/experiments/rail-g", data=edit)  # unticked
    assert r.status_code in (200, 303), r.text
    exp = (await client.get("/v1/admin/experiments/rail-g", headers=bearer(EXPER))).json()
    assert exp["auto_stop"] is False
    redis_client.hset(KEYS.experiment_counts(0, "rail-g"), mapping={
        "x:control": 900, "x:fast": 900, "e:control": 1000, "e:fast": 1000,
        "g:control": 10, "g:fast": 250})  # fmt: skip
    page = await client.get("/console/experiments/rail-g/results")
    assert page.status_code == 200
    assert '<table id="guardrails">' in page.text
    row = page.text.split('data-guardrail="degraded" data-variant="fast">')[1].split("</tr>")[0]
    assert "25.00%" in row and "250 of 1,000" in row and "worse" in row
    control = page.text.split('data-guardrail="degraded" data-variant="control">')[1]
    assert "worse" not in control.split("</tr>")[0]
