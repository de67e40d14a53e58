"""The one aligner: a phrase of an answer found where it occurs in the note.

Used by grounding (each item of an extraction task's answer, ``align.align_items``) and by the
task-evaluation scorers (import ``NoteIndex`` and ``align_mention`` from ``app.core.grounding.align``): build a
``NoteIndex`` once per note, then ``align_mention(text, index)`` per phrase. Three steps, the first that finds
something decides the match kind:

1. **exact**: the text verbatim, case-sensitive, not inside a longer word;
2. **normalized**: case, spacing, hyphens and punctuation ignored ("Non-small-cell" = "non small cell"), still
   starting and ending at word boundaries of the note;
3. **fuzzy**: windows of the note about as many words long as the mention, scored by a soft word-overlap
   (each mention word paired with its most similar unused window word; plurals count 0.95, a typo by its
   edit distance; order is ignored), accepted at ``FUZZY_THRESHOLD``. Only windows around note words close
   to one of the mention's two rarest words are scored, so cost stays bounded on a 100k-character note.

Once a kind is decided, the spans are every occurrence at that level or a better one: an exact match also
reports the same phrase written in another case elsewhere, for highlighting.

**Threshold** (``tests/bench/bench_align.py``): variants of NCBI-disease gold mentions that the exact and
normalized steps miss (plural/singular switched, a letter replaced, adjacent letters swapped, a word dropped
from a long mention, the first two words swapped) are positives, right when the best window overlaps a gold
offset; gold mentions of *other* abstracts that do not occur in the abstract are negatives. On the TRAIN split
(593 abstracts) F1 peaks at 0.76-0.80 (0.989); the higher end was taken, 0.80. At 0.80 on the DEVEL split
(100 abstracts, 1,555 variants, 2,000 negatives): precision 0.981, recall 0.980. Above 0.84 recall falls fast
(0.92 at 0.90): one typo in a two-word mention scores about 0.9.

Bounds: mentions over ``MAX_FUZZY_WORDS`` words get no fuzzy step; at most ``MAX_ANCHORS`` note positions are
scored, so on a long note whose words repeat more often than that, fuzzy spans are reported for the first
occurrences only (exact and normalized spans are always complete).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from app.core.grounding.report import Span

FUZZY_THRESHOLD = 0.80
"""Soft word-overlap score a fuzzy window needs (measured: see the module docstring)."""
MAX_FUZZY_WORDS = 12
"""Mentions longer than this are matched exactly or normalized only: a long phrase that is not in the note
verbatim is a paraphrase, which word overlap cannot judge."""
MAX_ANCHORS = 600
"""Note positions scored per fuzzy mention at most (the rarest mention words' positions first)."""
_WORD_SIM_MIN = 0.75
"""Two words this similar (1 - edit distance / length) may pair up in a fuzzy window: one typo in a word of
four letters or more, two in one of eight."""
_STOP = frozenset({"a", "an", "the", "of", "in", "on", "at", "to", "for", "and", "or", "with", "by", "from", "as",
                   "is", "was", "were", "be"})  # fmt: skip
_TOKEN = re.compile(r"[^\W_]+")

RANK = {"exact": 3, "normalized": 2, "fuzzy": 1, "none": 0}
"""How good a match kind is (higher is better)."""


@dataclass(frozen=True)
class Alignment:
    """Where a phrase occurs in the note."""

    match: str
    """``exact``, ``normalized``, ``fuzzy`` or ``none``."""
    score: float = 0.0
    """1.0 for exact and normalized matches, the best window's score for fuzzy ones, 0 for none."""
    spans: tuple[Span, ...] = ()
    """Every note span where it occurs (sorted), at the match's level or a better one."""


NO_MATCH = Alignment("none")


def _lower(text: str) -> str:
    """Lower case with one character per character, so offsets carry over (a few letters, such as "İ",
    lower-case to two characters: those are kept as they are)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _singular(w: str) -> str:
    if len(w) > 4 and w.endswith("es") and w[-3] in "sxz":
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def _edits(a: str, b: str) -> int:
    """Optimal-string-alignment distance (a swap of adjacent letters is one edit)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def word_similarity(a: str, b: str) -> float:
    """1 for the same word, 0.95 for singular/plural, else 1 - edits/length (0 for words of 3 letters or
    less that differ: "hiv" and "hpv" are different things)."""
    if a == b:
        return 1.0
    if _singular(a) == _singular(b):
        return 0.95
    if min(len(a), len(b)) <= 3 or abs(len(a) - len(b)) > 2:
        return 0.0
    return max(0.0, 1 - _edits(a, b) / max(len(a), len(b)))


def _trigrams(word: str) -> set[str]:
    w = f"#{word}#"
    return {w[i : i + 3] for i in range(len(w) - 2)}


@dataclass
class NoteIndex:
    """A note prepared for aligning many phrases to it: build once per note."""

    note: str
    low: str = field(init=False, repr=False)
    """The note lower-cased, offset for offset."""
    tokens: list[Span] = field(init=False, repr=False)
    """Word spans (letters and digits) in order."""
    words: list[str] = field(init=False, repr=False)
    """Each token lower-cased."""
    compact: str = field(init=False, repr=False)
    """The words joined without separators: case, spacing and punctuation gone."""
    offsets: list[int] = field(init=False, repr=False)
    """Note offset of each character of ``compact``."""
    starts: set[int] = field(init=False, repr=False)
    ends: set[int] = field(init=False, repr=False)
    """Positions in ``compact`` where a word starts / ends (a normalized match must start and end there)."""
    _positions: dict[str, list[int]] | None = field(init=False, repr=False, default=None)
    _grams: dict[str, set[str]] | None = field(init=False, repr=False, default=None)
    _similar: dict[str, dict[str, float]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.low = _lower(self.note)
        self.tokens = [m.span() for m in _TOKEN.finditer(self.low)]
        self.words = [self.low[s:e] for s, e in self.tokens]
        self.compact = "".join(self.words)
        self.offsets, self.starts, self.ends = [], set(), set()
        for s, e in self.tokens:
            self.starts.add(len(self.offsets))
            self.offsets.extend(range(s, e))
            self.ends.add(len(self.offsets))

    def positions(self, word: str) -> list[int]:
        """Token indexes of a (lower-case) word."""
        if self._positions is None:
            self._positions = {}
            for i, w in enumerate(self.words):
                self._positions.setdefault(w, []).append(i)
        return self._positions.get(word, [])

    def similar(self, word: str) -> dict[str, float]:
        """Note words close enough to ``word`` to pair with it in a fuzzy window, with their similarity."""
        if word in self._similar:
            return self._similar[word]
        if self._grams is None:  # built on the first fuzzy lookup only
            self._grams = {}
            for w in set(self.words):
                for g in _trigrams(w):
                    self._grams.setdefault(g, set()).add(w)
        shared = Counter(w for g in _trigrams(word) for w in self._grams.get(g, ()))
        need = max(1, len(word) - 4)  # one edit removes at most three of a word's len+1 trigrams
        found = {w: s for w, n in shared.items() if n >= need and (s := word_similarity(word, w)) >= _WORD_SIM_MIN}
        self._similar[word] = found
        return found


def _is_word_char(ch: str) -> bool:
    return ch.isalnum()


def _exact(text: str, index: NoteIndex) -> list[Span]:
    """Verbatim occurrences not inside a longer word (str.find: a regex with look-arounds tested every
    position of the note and was most of the cost)."""
    note, out = index.note, []
    at = note.find(text)
    while at >= 0:
        end = at + len(text)
        before = at > 0 and _is_word_char(note[at - 1]) and _is_word_char(text[0])
        after = end < len(note) and _is_word_char(note[end]) and _is_word_char(text[-1])
        if not (before or after):
            out.append((at, end))
        at = note.find(text, at + 1)
    return out


def _normalized(text: str, index: NoteIndex) -> list[Span]:
    needle = "".join(_TOKEN.findall(_lower(text)))
    out: list[Span] = []
    if not needle:
        return out
    at = index.compact.find(needle)
    while at >= 0:
        end = at + len(needle)
        if at in index.starts and end in index.ends:
            out.append((index.offsets[at], index.offsets[end - 1] + 1))
            at = index.compact.find(needle, end)
        else:
            at = index.compact.find(needle, at + 1)
    return out


def _window_score(mention: list[str], sims: list[dict[str, float]], window: list[str]) -> float:
    """Soft Dice over characters: each mention word paired with its most similar unused window word."""
    used: set[int] = set()
    matched = 0.0
    for m, sim in zip(mention, sims, strict=True):
        best, best_j = 0.0, -1
        for j, w in enumerate(window):
            if j not in used:
                s = 1.0 if w == m else sim.get(w, 0.0)
                if s > best:
                    best, best_j = s, j
        if best_j >= 0:
            used.add(best_j)
            matched += best * (len(m) + len(window[best_j]))
    total = sum(map(len, mention)) + sum(map(len, window))
    return matched / total if total else 0.0


def _fuzzy(text: str, index: NoteIndex, threshold: float) -> tuple[float, list[Span]]:
    mention = _TOKEN.findall(_lower(text))
    content = [w for w in mention if w not in _STOP]
    if not content or len(mention) > MAX_FUZZY_WORDS:
        return 0.0, []
    sims = [index.similar(w) if w not in _STOP else {} for w in mention]
    hits = {w: sorted(p for v in index.similar(w) for p in index.positions(v)) for w in set(content)}
    anchors: set[int] = set()
    for w in sorted(hits, key=lambda w: len(hits[w]))[:2]:  # the two rarest words
        anchors.update(hits[w][:MAX_ANCHORS])
    k, n = len(mention), len(index.words)
    scored: dict[tuple[int, int], float] = {}
    for p in sorted(anchors)[:MAX_ANCHORS]:
        for start in range(max(0, p - k), p + 1):
            for length in (k - 1, k, k + 1):
                end = start + length
                if length < 1 or end > n or end <= p or (start, end) in scored:
                    continue
                scored[(start, end)] = _window_score(mention, sims, index.words[start:end])
    best = max(scored.values(), default=0.0)
    spans: list[Span] = []
    taken: list[tuple[int, int]] = []
    for (s, e), score in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0][1] - kv[0][0], kv[0][0])):
        if score < threshold:
            break
        if all(e <= ts or te <= s for ts, te in taken):
            taken.append((s, e))
            spans.append((index.tokens[s][0], index.tokens[e - 1][1]))
    return best, sorted(spans)


def align_mention(text: str, index: NoteIndex, threshold: float = FUZZY_THRESHOLD) -> Alignment:
    """Where ``text`` occurs in the note (see the module docstring for the steps)."""
    text = text.strip()
    if not text:
        return NO_MATCH
    exact = _exact(text, index)
    normalized = _normalized(text, index)
    if exact or normalized:
        return Alignment("exact" if exact else "normalized", 1.0, tuple(sorted(set(exact) | set(normalized))))
    score, spans = _fuzzy(text, index, threshold)
    if spans:
        return Alignment("fuzzy", round(score, 3), tuple(spans))
    return NO_MATCH


def fuzzy_score(text: str, index: NoteIndex) -> tuple[float, tuple[Span, ...]]:
    """The best fuzzy window's score and every window at that score, whatever the threshold (for measuring
    the threshold: ``tests/bench/bench_align.py``)."""
    score, spans = _fuzzy(text, index, threshold=1e-9)
    return score, tuple(spans)
