"""A comparison's cells: one (backbone, policy, seed) each, under canonical names, each named
for its run directory in ``OUT/runs``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import TlfError
from ..paths import slug
from ..plan import canonical_name
from ..registry import get_registry


@dataclass(frozen=True)
class ComparisonCell:
    """One cell of a comparison."""

    backbone: str
    policy: str
    seed: int

    @property
    def name(self) -> str:
        """The run directory's name inside ``OUT/runs``."""
        return f"{slug(self.backbone)}-{slug(self.policy)}-s{self.seed}"


def split_names(values: str | Sequence[str] | None) -> list[str]:
    """``"a,b"`` or ``["a,b", "c"]`` -> ``["a", "b", "c"]`` (order kept, duplicates and blanks dropped)."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    names = [part.strip() for item in items for part in item.split(",")]
    return list(dict.fromkeys(n for n in names if n))


def plan_runs(dataset: str, backbones: Sequence[str], policies: Sequence[str], seeds: Sequence[int]) -> list[ComparisonCell]:
    """Every run of the comparison, seed by seed, under canonical names; every name is checked
    (unknown ones raise TlfError with suggestions) before anything runs."""
    get_registry().resolve("datasets", dataset)
    if not backbones:
        raise TlfError("no backbone to compare", hint="pass --backbone NAME or --backbones A,B")
    if not policies:
        raise TlfError("no policy to compare", hint="pass --policies scratch,transfer,partial:conv5,init")
    if not seeds:
        raise TlfError("no seed to run", hint="pass --seeds 1 or more")
    backbones = list(dict.fromkeys(canonical_name("backbones", b) for b in backbones))
    policies = list(dict.fromkeys(canonical_name("policies", p) for p in policies))
    runs = [ComparisonCell(b, p, s) for s in seeds for b in backbones for p in policies]
    seen: dict[str, ComparisonCell] = {}
    for run in runs:
        other = seen.setdefault(run.name, run)
        if other is not run:
            raise TlfError(f"{other.backbone} · {other.policy} and {run.backbone} · {run.policy} would share the run "
                           f"directory {run.name}", hint="list each backbone and policy once")
    return runs
