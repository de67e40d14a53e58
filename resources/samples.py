"""Synthetic sample discharge summaries written for this project (no real patient)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources as ir


@dataclass(frozen=True)
class SampleNote:
    name: str
    title: str
    text: str


_SAMPLES = {
    "pneumonia": "Community-acquired pneumonia with acute kidney injury",
    "heart-failure": "Decompensated heart failure",
    "appendicitis": "Laparoscopic appendectomy",
}


def list_samples() -> list[str]:
    return list(_SAMPLES)


def load_sample(name: str) -> SampleNote:
    if name not in _SAMPLES:
        raise KeyError(f"unknown sample note {name!r}; available: {', '.join(_SAMPLES)}")
    text = ir.files("resources").joinpath("samples", f"{name}.txt").read_text(encoding="utf-8")
    return SampleNote(name, _SAMPLES[name], text)
