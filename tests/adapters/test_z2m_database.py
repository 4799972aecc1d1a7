"""Issue 17's breadth test: Zigbee2MQTT's whole device database through ``hearth replay``.

``tests/z2mdb/generate.mjs`` turns the zigbee-herdsman-converters release pinned in
``tests/z2mdb/package-lock.json`` into a capture: ``bridge/devices`` with one device per definition, a state
message per readable exposed property, one message per button ``action`` value (see tests/z2mdb/README.md).
The replay's figures (devices with a reading, properties mapped per expose type, actions read as presses,
wrong buttons, errors, phantom capabilities, every ``property [unit] -> capability.attribute`` mapping) are
held against ``tests/z2mdb/baseline.json``: they may only get better. ``HEARTH_Z2MDB_UPDATE=1`` rewrites the
baseline (commit it with the change that improved the figures). ``python -m tests.z2mdb.measure`` prints
the same figures with the lists to work from.

Needs Node and ``npm ci --prefix tests/z2mdb``; without them it skips, or fails with
``HEARTH_REQUIRE_Z2MDB=1`` (CI sets it).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.z2mdb import measure as z2mdb


def _require_database() -> None:
    problem = z2mdb.node_problem()
    if problem is None:
        return
    if os.environ.get(z2mdb.REQUIRE_ENV) == "1":
        pytest.fail(f"the Zigbee2MQTT database test is required ({z2mdb.REQUIRE_ENV}=1) but {problem}", pytrace=False)
    pytest.skip(f"Zigbee2MQTT database not installed: {problem}")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    _require_database()
    result = z2mdb.measure(timing=True)
    path = z2mdb.save(result)
    print("\n" + z2mdb.summary(result["figures"]) + f"\n  (figures in {path.relative_to(z2mdb.REPO)})")
    return result


def test_every_definition_becomes_a_device(report: dict[str, Any]) -> None:
    figures = report["figures"]
    assert figures["definitions"] > 4000, "the generator found too few definitions: the package's layout changed?"
    assert figures["devices_in_replay"] == figures["devices"], (
        f"{figures['devices'] - figures['devices_in_replay']} devices of bridge/devices are missing after the replay")
    assert figures["properties"] > 0 and figures["actions"] > 0


def test_figures_do_not_get_worse_than_the_baseline(report: dict[str, Any]) -> None:
    figures = report["figures"]
    if os.environ.get(z2mdb.UPDATE_ENV) == "1" or not z2mdb.BASELINE.is_file():
        z2mdb.write_baseline(figures)
        print(f"wrote {z2mdb.BASELINE.relative_to(z2mdb.REPO)}")
        return
    baseline = json.loads(z2mdb.BASELINE.read_text(encoding="utf-8"))
    worse, better = z2mdb.compare(figures, baseline)
    if better:
        print("better than tests/z2mdb/baseline.json:\n  " + "\n  ".join(better)
              + f"\nrecord it: {z2mdb.UPDATE_ENV}=1 .venv/bin/python -m pytest tests/adapters/test_z2m_database.py "
                "(or python -m tests.z2mdb.measure --update-baseline), and commit baseline.json")
    if worse:
        pytest.fail("Zigbee2MQTT database figures got worse than tests/z2mdb/baseline.json:\n  "
                    + "\n  ".join(worse)
                    + "\n(python -m tests.z2mdb.measure lists the properties, actions and errors; if the change is "
                      f"intended, {z2mdb.UPDATE_ENV}=1 rewrites the baseline)", pytrace=False)
