"""How a model is named to the user: the "verified" column of both front ends' model lists, and a model as
plain data (``asclepius models info --json`` and the run header), with the demo model's warning."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from app.core.limits import context_warning, trained_context, variant_of
from app.core.models.demo import DEMO_LABEL
from app.core.models.entries import CHANGED, MISSING
from app.core.types import ModelInfo


def verified_label(info: ModelInfo) -> str:
    """The "verified" column of the CLI's and the app's model lists: never "yes" for a file gone or changed."""
    if info.status == MISSING:
        return "MISSING"
    if info.status == CHANGED:
        return "changed"
    return "yes" if info.verified else "NO"


def describe(info: ModelInfo, n_ctx: int | None = None) -> dict[str, Any]:
    """A model as plain data, with its Asclepius variant and trained context (``app.core.limits``); with
    ``n_ctx``, a ``context_warning`` when that context is beyond what the model was trained on."""
    d = asdict(info)
    d["label"] = info.display_name
    variant = variant_of(info)
    d["variant"] = variant.family if variant else None
    d["trained_context"] = trained_context(info)
    if n_ctx is not None and (warning := context_warning(info, n_ctx)):
        d["context_warning"] = warning
    if info.is_demo:
        d["warning"] = DEMO_LABEL
    return d


def human_size(n: int | None) -> str:
    """A byte count as every screen and command shows it: decimal units (1 MB = 1,000,000 bytes), as disks,
    downloads and ``ls --si`` count, so the demo model is "253.1 MB" everywhere (not 241.4 MiB in one place)."""
    if n is None:
        return "?"
    if n < 1000:
        return f"{n} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6)):
        if round(n / scale, 1) < 1000:
            return f"{n / scale:.1f} {unit}"
    gb = n / 1e9
    return f"{gb:.1f} GB" if round(gb, 1) < 100 else f"{gb:.0f} GB"
