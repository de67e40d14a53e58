"""Who rates what, in which order: a study's assignment, computed from its seed (pure, no database).

- The calibration subset: ``calibration`` items drawn with the seed; every rater rates all their answers.
- Every other item goes to ``overlap`` raters, and all arms of an item go to the same raters: each rater
  then scores the arms side by side on the same note (the paired design of the Asclepius evaluation, and
  what a paired test between arms needs). Raters are picked least-loaded first, so loads differ by at most
  one item (``arms`` answers); among equally loaded raters the pair that has rated together least is
  preferred, so every pair of raters shares items for pairwise agreement.
- Each rater's order is shuffled with a generator seeded by (seed, rater): items in random order, and the
  arms of one item in random order next to each other.

``random.Random`` seeded with a string is the same on every platform and Python 3 version (it hashes the
string with SHA-512), so a study's assignment can be recomputed anywhere from its seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from app.core.errors import UsageError


@dataclass(frozen=True)
class Plan:
    """A study's assignment."""

    calibration: frozenset[int]
    """Indices of the items of the calibration subset."""
    order: dict[str, list[tuple[int, int]]]
    """Rater -> (item index, arm index) in the order the rater sees them."""


def check_design(items: int, arms: int, raters: Sequence[str], overlap: int, calibration: int) -> list[str]:
    """Every problem with a study's numbers (empty: it can be assigned)."""
    problems = []
    if items < 1:
        problems.append("a study needs at least one item")
    if arms < 1:
        problems.append("a study needs at least one arm (a model, an endpoint or logged runs)")
    if len(raters) < 1:
        problems.append("a study needs at least one rater")
    if len(set(raters)) != len(raters):
        problems.append("a rater is named twice")
    if not 1 <= overlap <= max(1, len(raters)):
        problems.append(f"--overlap must be between 1 and the number of raters ({len(raters)}), not {overlap}")
    if not 0 <= calibration <= items:
        problems.append(f"--calibration must be between 0 and the number of items ({items}), not {calibration}")
    return problems


def assign(items: int, arms: int, raters: Sequence[str], overlap: int, calibration: int, seed: int) -> Plan:
    """The assignment of ``items`` x ``arms`` answers to ``raters`` (see the module's docstring)."""
    if problems := check_design(items, arms, raters, overlap, calibration):
        raise UsageError("; ".join(problems))
    rng = random.Random(f"asclepius-study:{seed}")
    calib = frozenset(rng.sample(range(items), calibration))
    rest = [i for i in range(items) if i not in calib]
    rng.shuffle(rest)
    load = dict.fromkeys(raters, 0)
    together = {frozenset(p): 0 for p in combinations(raters, 2)}
    tiebreak = {r: rng.random() for r in raters}
    chosen: dict[str, list[int]] = {r: sorted(calib) for r in raters}
    for i in rest:
        group: list[str] = []
        for _ in range(overlap):
            pick = min(
                (r for r in raters if r not in group),
                key=lambda r: (load[r], sum(together[frozenset((r, g))] for g in group), tiebreak[r]),
            )
            group.append(pick)
        for a, b in combinations(group, 2):
            together[frozenset((a, b))] += 1
        for r in group:
            load[r] += 1
            chosen[r].append(i)
    order = {r: _rater_order(chosen[r], arms, seed, r) for r in raters}
    return Plan(calib, order)


def _rater_order(items: list[int], arms: int, seed: int, rater: str) -> list[tuple[int, int]]:
    """One rater's items shuffled, each item's arms shuffled and kept together."""
    rng = random.Random(f"asclepius-study:{seed}:{rater}")
    shuffled = sorted(items)
    rng.shuffle(shuffled)
    out: list[tuple[int, int]] = []
    for i in shuffled:
        arm_order = list(range(arms))
        rng.shuffle(arm_order)
        out.extend((i, a) for a in arm_order)
    return out


__all__ = ["Plan", "assign", "check_design"]
