"""Evidence tiers: how much a kind of evidence can prove. Below findings and the registries,
which both name them.
"""

from enum import StrEnum


class Tier(StrEnum):
    """How much an evidence kind can prove, best first."""

    local = "local"  # a reproducible run or test here
    primary = "primary"  # an upstream source: code, issue, vendor document
    secondary = "secondary"  # a write-up about other work


TIER_RANK = {Tier.local: 3, Tier.primary: 2, Tier.secondary: 1}
