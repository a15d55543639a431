"""The first two updates of the defaults, the 2018 scripts, A2C without cap or bound, PPO's clip (fake envs) and
the defaults on the default game are, bit for bit, those the code of commit 4639155 made before issue 21 renamed
the policy-loss options and moved the sampling behind one interface (tests/data/updates.json, recorded by
tests/update_fixture.py): weights and optimizer slots after each update, and the table's losses."""
import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:   # the env processes unpickle faulty_envs' factories
    sys.path.insert(0, HERE)

import update_fixture  # noqa: E402


@pytest.mark.parametrize("case", list(update_fixture.CASES))
def test_the_first_two_updates_are_the_recorded_ones(case):
    with open(update_fixture.FIXTURE) as fh:
        recorded = json.load(fh)[case]
    updates = update_fixture.run_case_in_a_process(case)
    for number, (now, before) in enumerate(zip(updates, recorded, strict=True), start=1):
        assert sorted(now["variables"]) == sorted(before["variables"]), f"update {number}: other variables"
        differ = {name: (now["variables"][name][1], before["variables"][name][1]) for name in before["variables"]
                  if now["variables"][name][0] != before["variables"][name][0]}
        assert not differ, f"update {number}: variables not bit for bit the same (sums now, before): {differ}"
        assert now["losses"] == before["losses"], f"update {number}"
