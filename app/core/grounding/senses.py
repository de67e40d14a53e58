"""PLACEHOLDER (being written): abbreviation sense inventories."""

from __future__ import annotations


class SenseInventory:
    pass
