"""What counts as a match between an answer's items and the gold (the rules every scorer uses).

**Normalized text** (``normalize``): Unicode compatibility forms folded (NFKC), case folded, the text cut into
words of letters and digits (so spacing, hyphens and punctuation do not count: "Non-small-cell" equals
"non small cell", "G6PD-deficiency" equals "g6pd deficiency"), and one leading article ("a", "an", "the")
dropped when words remain. Plurals are NOT folded here: "cancers" is not "cancer" for a strict match. The
word rule is the aligner's own (``app.core.grounding.mention``), so "normalized" means the same thing when an
item is found in the note and when it is compared with the gold.

**Strict**: the normalized texts are equal. **Lenient**: the two share at least one content word (the
aligner's stop words left out, plurals folded to the singular: "hemolytic anemias" and "chronic
nonspherocytic hemolytic anemia" match, "cancer" and "breast cancer" match, "fever" and "rash" do not); a
text with no content word compares all its words. Lenient pairs are matched **one to one** (a maximum
matching), so one answer item broad enough to overlap five gold mentions is credited once, not five times.

**Spans** (mention level): strict = the same start and end (a discontinuous gold mention, made of fragments,
never equals a contiguous span: it caps strict mention-level recall); lenient = the spans share at least one
character (with any fragment), matched one to one as above.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import TypeVar

from app.core.grounding.mention import _STOP, _TOKEN, _singular

L = TypeVar("L")
R = TypeVar("R")
_ARTICLES = frozenset({"a", "an", "the"})
_SPACE = re.compile(r"\s+")


def words(text: str) -> list[str]:
    """The words of a text, compatibility-folded and case-folded."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def normalize(text: str) -> str:
    """The strict comparison form (see the module docstring); "" for a text with no word."""
    w = words(text)
    if len(w) > 1 and w[0] in _ARTICLES:
        w = w[1:]
    return " ".join(w)


def content_words(text: str) -> frozenset[str]:
    """The lenient comparison form: content words, singular."""
    w = words(text)
    content = [x for x in w if x not in _STOP] or w
    return frozenset(_singular(x) for x in content)


def max_matching(left: Sequence[L], right: Sequence[R], edge: Callable[[L, R], bool]) -> list[tuple[int, int]]:
    """A maximum one-to-one matching of ``left`` and ``right`` where ``edge`` allows a pair (Kuhn's augmenting
    paths, with an explicit stack: a long path must not hit Python's recursion limit). Returns (i, j) pairs."""
    adj = [[j for j, r in enumerate(right) if edge(lv, r)] for lv in left]
    owner: list[int | None] = [None] * len(right)
    for start in range(len(left)):
        if not adj[start]:
            continue
        seen: set[int] = set()
        stack: list[tuple[int, int]] = [(start, 0)]  # (left node, next edge to try)
        came: dict[int, int] = {}  # right node -> the left node that reached it
        found: int | None = None
        while stack and found is None:
            u, k = stack.pop()
            if k >= len(adj[u]):
                continue
            stack.append((u, k + 1))
            v = adj[u][k]
            if v in seen:
                continue
            seen.add(v)
            came[v] = u
            if owner[v] is None:
                found = v
            else:
                stack.append((owner[v], 0))  # type: ignore[arg-type]
        v = found
        while v is not None:  # flip the path: each right node to the left node that reached it
            u = came[v]
            prev = next((w for w, o in enumerate(owner) if o == u), None)
            owner[v] = u
            v = prev if u != start else None
    return [(u, j) for j, u in enumerate(owner) if u is not None]


def lenient_text(a: str, b: str) -> bool:
    """Two texts match leniently (shared content word)."""
    return bool(content_words(a) & content_words(b))


Span = tuple[int, int]


def spans_overlap(a: Sequence[Span], b: Sequence[Span]) -> bool:
    """Any piece of ``a`` shares a character with any piece of ``b``."""
    return any(s < e2 and s2 < e for s, e in a for s2, e2 in b)


def space(text: str) -> str:
    """Runs of whitespace as one space, ends stripped (for showing items in details)."""
    return _SPACE.sub(" ", text).strip()
