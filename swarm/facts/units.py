"""Units: a finding's number in its predicate's unit, converted with pint.

pint (a units library: dimensional analysis, SI and binary prefixes, rates) converts tokens/min
to tokens/s, GiB to GB, s to ms, and refuses a unit of another dimension. It is imported only
when a finding's unit differs from its predicate's (most never do), and each pair of units is
resolved once.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from swarm.core.errors import InvalidInput

# Spellings pint does not read as we mean them.
SPELLINGS = {"%": "percent", "pct": "percent", "tok": "token", "toks": "token"}


@functools.cache
def _ureg() -> Any:
    import pint  # imported only when a unit has to be converted

    ureg: Any = pint.UnitRegistry()
    ureg.define("token = [token] = tok = tokens")
    ureg.define("request = [request] = req = requests")
    return ureg


def _spelled(unit: str) -> str:
    return re.sub(r"[A-Za-z%]+", lambda m: SPELLINGS.get(m.group(0).lower(), m.group(0)), unit)


@functools.cache
def factor(unit: str, target: str) -> float | str:
    """How many `target` one `unit` is, or why the one cannot become the other."""
    if unit.strip() == target.strip():
        return 1.0
    import pint

    ureg = _ureg()
    try:
        quantity = ureg.Quantity(1.0, _spelled(unit))
        return float(quantity.to(_spelled(target)).magnitude)
    except pint.DimensionalityError:
        return f"{unit!r} cannot be converted to {target!r} (another dimension)"
    except (pint.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError, TypeError):
        return f"{unit!r} is not a unit pint knows"


def convert(value: float, unit: str | None, target: str | None) -> float:
    """value in target; raises InvalidInput naming the expected unit when it cannot be."""
    if unit is None or target is None:
        return value
    found = factor(unit, target)
    if isinstance(found, str):
        raise InvalidInput(f"unit {found}; this predicate expects {target}")
    if found == 1.0:
        return value
    return float(f"{value * found:.12g}")  # no float noise in the stored, compared value


def check(unit: str | None, target: str | None, predicate: str) -> None:
    """Refuse a finding whose unit cannot be converted to its predicate's (InvalidInput)."""
    if unit is None or target is None:
        return
    found = factor(unit, target)
    if isinstance(found, str):
        raise InvalidInput(f"{predicate}: unit {found}; expected {target} or a unit of it")
