"""Units: findings converted to their predicate's unit with pint; another dimension refused."""

from __future__ import annotations

import pytest

from swarm.core.errors import InvalidInput
from swarm.facts import units


def test_rates_sizes_and_times_convert_to_the_predicates_unit() -> None:
    assert units.convert(1800, "tokens/min", "tokens/s") == 30.0
    assert units.convert(74.5, "GiB", "GB") == pytest.approx(79.9937658)
    assert units.convert(0.25, "s", "ms") == 250.0
    assert units.convert(95, "tok/s", "tokens/s") == 95
    assert units.convert(36.5, "%", "%") == 36.5


def test_a_unit_of_another_dimension_is_refused_naming_the_expected_one() -> None:
    with pytest.raises(InvalidInput, match="expected tokens/s"):
        units.check("GB", "tokens/s", "decode_tps_single_stream")
    with pytest.raises(InvalidInput, match="not a unit pint knows"):
        units.check("furlongs/fortnightz", "tokens/s", "decode_tps_single_stream")
    units.check(None, "tokens/s", "decode_tps_single_stream")  # no unit: the predicate's
