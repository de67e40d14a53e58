"""Training data: a memory-mapped pretraining token file, and SFT examples with exact answer-only labels.

Pretraining: every document becomes ``BOS doc EOS`` (one BOS per document: the reference's tokenizer added
a second one), the stream is written once to ``tokens.bin`` (uint16/uint32) and read back as fixed blocks
of ``max_length`` tokens; the remainder is dropped and counted.

SFT: the source is the variant's training prompt from ``resources.prompts`` and the target is
``answer + EOS``; the prompt is tokenized segment by segment as the app's engine does and the answer on its
own (so the label boundary cannot drift by one token), the labels are -100 on the prompt, and every real
token, BOS included, is attended. Note, question and answer lose their outer newlines only, as in the
reference (recipe ``strip_text: whitespace`` strips spaces and tabs too, as the app does at inference).
An example whose prompt + answer + EOS exceeds ``max_length`` is
dropped and counted, never cut.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resources.prompt_tokens import Tokenize, answer_tokens, segment_tokens
from resources.prompts import get_style

IGNORE = -100
TEXT_COLUMNS = ("text", "note", "section_text")
"""Pretraining corpora: the first of these columns a row has is the document."""
SFT_COLUMNS = ("note", "question", "answer")
DATA_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".arrow", ".parquet")


class DataError(ValueError):
    """The data cannot be used as given (missing, empty, wrong columns); the message says which and why."""


# -- reading --------------------------------------------------------------------------------------------
def data_files(path: Path) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists():
            return [path]  # a datasets.save_to_disk directory
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
        if not files:
            raise DataError(f"{path} holds no data files ({', '.join(DATA_SUFFIXES)})")
        return files
    return [path]


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL/JSON/CSV/Arrow/Parquet file or a ``save_to_disk`` folder; a .txt file is one row."""
    for f in data_files(path):
        suffix = f.suffix.lower()
        try:
            if f.is_dir() or suffix in (".arrow", ".parquet"):
                yield from _iter_datasets(f)
            elif suffix == ".txt":
                yield {"text": f.read_text(encoding="utf-8")}
            elif suffix == ".jsonl":
                with f.open(encoding="utf-8") as fh:
                    for n, line in enumerate(fh, 1):
                        if line.strip():
                            row = json.loads(line)
                            if not isinstance(row, dict):
                                raise DataError(f"{f}:{n}: a JSONL line must be an object")
                            yield row
            elif suffix == ".json":
                rows = json.loads(f.read_text(encoding="utf-8"))
                if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                    raise DataError(f"{f}: a JSON file must hold a list of objects")
                yield from rows
            elif suffix == ".csv":
                csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
                with f.open(encoding="utf-8", newline="") as fh:
                    yield from csv.DictReader(fh)
            else:
                raise DataError(f"{f}: unsupported data file type (use {', '.join(DATA_SUFFIXES)})")
        except UnicodeDecodeError:
            raise DataError(f"{f} is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{f} is not valid JSON: {exc}") from None


def _iter_datasets(f: Path) -> Iterator[dict[str, Any]]:
    import datasets

    try:
        if f.is_dir():
            ds = datasets.load_from_disk(str(f))
        elif f.suffix.lower() == ".parquet":
            ds = datasets.Dataset.from_parquet(str(f))
        else:
            ds = datasets.Dataset.from_file(str(f))
    except Exception as exc:
        raise DataError(f"cannot read {f} as a dataset: {exc}") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{f}: a DatasetDict needs a 'train' split (has {', '.join(ds)})")
        ds = ds["train"]
    yield from ds


def hash_data(path: Path) -> dict[str, str]:
    """sha256 of every data file (for a dataset folder, of each file inside), keyed by path."""
    out = {}
    for f in data_files(path):
        for part in sorted(f.rglob("*")) if f.is_dir() else [f]:
            if part.is_file():
                h = hashlib.sha256()
                with part.open("rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(chunk)
                out[str(part)] = h.hexdigest()
    return out


def tokenizer_fingerprint(tokenizer: Any) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    h = hashlib.sha256(json.dumps([vocab, tokenizer.bos_token_id, tokenizer.eos_token_id]).encode())
    return h.hexdigest()


def special_ids(tokenizer: Any) -> tuple[int, int]:
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None or eos is None:
        raise DataError(f"the tokenizer has no BOS/EOS token (bos={bos}, eos={eos}); a LLaMA-family one has both")
    return int(bos), int(eos)


# -- held-out split -------------------------------------------------------------------------------------
def text_key(text: str) -> str:
    """What the held-out split groups by: a note's text (identical notes always land on the same side)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_keys(keys: Iterable[str], fraction: float, seed: int) -> frozenset[str]:
    """The held-out ``fraction`` of the distinct keys (at least one, never all), chosen by ``seed`` alone:
    the keys are sorted before the seeded permutation, so row order does not change the split."""
    unique = sorted(set(keys))
    k = max(1, round(fraction * len(unique)))
    if k >= len(unique):
        raise DataError(
            f"eval.split {fraction} of {len(unique)} distinct note(s) leaves nothing to train on "
            "(lower eval.split, add data, or give eval.file)"
        )
    order = np.random.default_rng(seed).permutation(len(unique))
    return frozenset(unique[i] for i in order[:k])


@dataclass(frozen=True)
class Part:
    """One side of a held-out split: rows whose note (pretraining: document) key is in ``held_out`` are
    the ``eval`` side, the others the ``train`` side."""

    name: str
    """``train`` or ``eval``."""
    held_out: frozenset[str]
    """``text_key`` of every held-out note."""

    def keeps(self, note: str) -> bool:
        return (text_key(note) in self.held_out) == (self.name == "eval")

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps([self.name, sorted(self.held_out)]).encode()).hexdigest()[:16]


def document_keys(path: Path) -> list[str]:
    """``text_key`` of every non-empty pretraining document (the split's first pass over the corpus)."""
    return [text_key(t) for t in _documents(path) if t.strip()]


def sft_note_keys(path: Path) -> list[str]:
    """``text_key`` of every SFT row's note: all the instructions on one note go to the same side."""
    return [text_key(str(row.get("note") or "")) for row in iter_rows(path)]


# -- pretraining ----------------------------------------------------------------------------------------
@dataclass
class TokenFileInfo:
    """What ``tokenize_corpus`` wrote; saved as ``tokens.json`` beside ``tokens.bin``."""

    documents: int
    tokens: int
    dtype: str
    key: str
    data_sha256: dict[str, str] = field(default_factory=dict)
    empty_documents: int = 0


def tokenize_corpus(
    path: Path, tokenizer: Any, cache_dir: Path, batch: int = 256, part: Part | None = None
) -> tuple[Path, TokenFileInfo]:
    """Tokenize the corpus (or one ``part`` of its held-out split) once into ``cache_dir/<key>/tokens.bin``;
    later calls with the same data, tokenizer and part reuse it. Returns the token file and its counts."""
    bos, eos = special_ids(tokenizer)
    data_sha = hash_data(path)
    keyed: list[Any] = [data_sha, tokenizer_fingerprint(tokenizer)] + ([part.fingerprint()] if part else [])
    key = hashlib.sha256(json.dumps(keyed).encode()).hexdigest()[:16]
    out_dir = Path(cache_dir) / f"pretrain-{key}"
    bin_path, meta_path = out_dir / "tokens.bin", out_dir / "tokens.json"
    if meta_path.exists() and bin_path.exists():
        return bin_path, TokenFileInfo(**json.loads(meta_path.read_text()))
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.uint32
    info = TokenFileInfo(documents=0, tokens=0, dtype=np.dtype(dtype).name, key=key, data_sha256=data_sha)
    # Unique per process: on a multi-node run each node's first rank may tokenize into a shared folder at once;
    # the results are identical and the rename is atomic, so the race is harmless.
    tmp = out_dir / f"tokens.{socket.gethostname()}.{os.getpid()}.partial"
    with tmp.open("wb") as fh:
        docs = (t for t in _documents(path) if part is None or part.keeps(t))
        for texts in _batched(docs, batch):
            kept = [t for t in texts if t.strip()]
            info.empty_documents += len(texts) - len(kept)
            if not kept:
                continue
            for ids in tokenizer(kept, add_special_tokens=False, split_special_tokens=True)["input_ids"]:
                np.asarray([bos, *ids, eos], dtype=dtype).tofile(fh)
                info.documents += 1
                info.tokens += len(ids) + 2
    if info.documents == 0:
        tmp.unlink()
        raise DataError(f"the corpus {path} holds no non-empty documents")
    tmp.replace(bin_path)
    tmp_meta = tmp.with_suffix(".json")
    tmp_meta.write_text(json.dumps(asdict(info), indent=2))
    tmp_meta.replace(meta_path)
    return bin_path, info


def _documents(path: Path) -> Iterator[str]:
    for row in iter_rows(path):
        column = next((c for c in TEXT_COLUMNS if c in row), None)
        if column is None:
            raise DataError(
                f"{path}: a pretraining row needs one of the columns {', '.join(TEXT_COLUMNS)}; got {sorted(row)}"
            )
        yield str(row[column] or "")


def _batched(items: Iterable[str], n: int) -> Iterator[list[str]]:
    buf: list[str] = []
    for x in items:
        buf.append(x)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf


class PretrainBlocks:
    """Fixed blocks of ``block`` tokens over a memory-mapped token file (labels = inputs; the model shifts).
    Training drops the incomplete last block; an evaluation set keeps it (``keep_tail``: every held-out token
    counts, the collator pads it)."""

    def __init__(self, bin_path: Path, dtype: str, block: int, keep_tail: bool = False):
        self.tokens = np.memmap(bin_path, dtype=np.dtype(dtype), mode="r")
        self.block = block
        self.n_blocks = -(-len(self.tokens) // block) if keep_tail else len(self.tokens) // block
        self.dropped_tokens = max(0, len(self.tokens) - self.n_blocks * block)

    def __len__(self) -> int:
        return self.n_blocks

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        if not 0 <= i < self.n_blocks:
            raise IndexError(i)
        ids = self.tokens[i * self.block : (i + 1) * self.block].astype(np.int64).tolist()
        return {"input_ids": ids, "labels": ids}


# -- SFT ------------------------------------------------------------------------------------------------
@dataclass
class SftStats:
    rows: int = 0
    examples: int = 0
    dropped_truncated: int = 0
    """Rows whose prompt + answer + EOS would exceed max_length: dropped, never cut."""
    dropped_empty: int = 0
    """Rows with an empty note, question or answer."""
    answer_tokens: int = 0
    """Tokens with a loss (answer tokens + one EOS per example)."""
    tokens: int = 0


def hf_tokenize(tokenizer: Any) -> Tokenize:
    """A Hugging Face tokenizer as the shared segment rule's ``tokenize(text, special)`` (no BOS/EOS):
    user text (``special=False``) splits special-token spellings, so ``</s>`` in a note is plain text."""
    return lambda text, special: tokenizer(text, add_special_tokens=False, split_special_tokens=not special)[
        "input_ids"
    ]


STRIP_CHARS: dict[str, str | None] = {"newlines": "\n", "whitespace": None}
"""Recipe ``strip_text`` -> the characters stripped from the ends of note, question and answer:
``newlines`` is the reference's ``v.strip("\n")`` (spaces and tabs kept), ``whitespace`` the app's rule."""


def prompt_ids(tokenizer: Any, style_id: str, note: str, question: str, strip: str = "newlines") -> list[int]:
    """``BOS + prompt`` tokenized segment by segment by the rule the app's engine uses at inference
    (``resources.prompt_tokens``); ``strip`` names what comes off the ends of the user text."""
    bos, _ = special_ids(tokenizer)
    pieces = segment_tokens(
        get_style(style_id), note, question, hf_tokenize(tokenizer), bos=[bos], strip=STRIP_CHARS[strip]
    )
    return [t for piece in pieces for t in piece]


def sft_example(
    tokenizer: Any, style_id: str, note: str, question: str, answer: str, strip: str = "newlines"
) -> dict[str, list[int]]:
    """One example: ``BOS + prompt`` (labels -100) then ``answer + EOS`` (labels = the tokens). The answer
    is tokenized on its own, in the context of the prompt's last character (what a whole-string
    tokenization of prompt + answer gives it, as in the reference), so no off-by-one can arise."""
    _, eos = special_ids(tokenizer)
    src = prompt_ids(tokenizer, style_id, note, question, strip)
    tgt = answer_tokens(get_style(style_id), answer, hf_tokenize(tokenizer), STRIP_CHARS[strip])
    return {"input_ids": [*src, *tgt, eos], "labels": [IGNORE] * len(src) + [*tgt, eos]}


def build_sft(
    path: Path, tokenizer: Any, style_id: str, max_length: int, strip: str = "newlines", part: Part | None = None
) -> tuple[list[dict[str, list[int]]], SftStats]:
    """Examples of every row (or of one ``part`` of the held-out split), with their counts."""
    stats = SftStats()
    examples = []
    for row in iter_rows(path):
        missing = [c for c in SFT_COLUMNS if c not in row]
        if missing:
            raise DataError(
                f"{path}: an SFT row needs the columns {', '.join(SFT_COLUMNS)}; missing {', '.join(missing)} "
                f"(has {', '.join(sorted(row)) or 'none'})"
            )
        if part is not None and not part.keeps(str(row["note"] or "")):
            continue
        stats.rows += 1
        note, question, answer = (str(row[c] or "") for c in SFT_COLUMNS)
        if not (note.strip() and question.strip() and answer.strip()):
            stats.dropped_empty += 1
            continue
        ex = sft_example(tokenizer, style_id, note, question, answer, strip)
        if len(ex["input_ids"]) > max_length:
            stats.dropped_truncated += 1
            continue
        examples.append(ex)
        stats.answer_tokens += sum(1 for x in ex["labels"] if x != IGNORE)
        stats.tokens += len(ex["input_ids"])
    stats.examples = len(examples)
    if stats.rows == 0:
        raise DataError(f"the SFT dataset {path} is empty")
    if not examples:
        raise DataError(
            f"no usable SFT example in {path}: {stats.dropped_truncated} longer than max_length {max_length}, "
            f"{stats.dropped_empty} with an empty field"
        )
    return examples, stats


def pack_examples(examples: Sequence[dict[str, list[int]]], max_length: int) -> list[dict[str, list[int]]]:
    """Best-fit-decreasing packing into rows of at most ``max_length`` tokens. Each row carries
    ``position_ids`` restarting at 0 for every example: transformers' LLaMA/Mistral turn that into a
    block-diagonal causal mask (no attention across examples). A boundary needs no extra label masking:
    every example starts with BOS, whose label is -100."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, row index), sorted
    for i in order:
        n = len(examples[i]["input_ids"])
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            cap, r = free.pop(j)
            rows[r].append(i)
            bisect.insort(free, (cap - n, r))
        else:
            rows.append([i])
            bisect.insort(free, (max_length - n, len(rows) - 1))
    packed = []
    for members in rows:
        row: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
        for i in sorted(members):
            ex = examples[i]
            row["input_ids"] += ex["input_ids"]
            row["labels"] += ex["labels"]
            row["position_ids"] += list(range(len(ex["input_ids"])))
        packed.append(row)
    return packed


def collate(batch: Sequence[dict[str, list[int]]], pad_id: int = 0) -> dict[str, Any]:
    """Right-pad to the longest row. Unpacked rows get an ``attention_mask``; packed rows get
    ``position_ids`` (the padding is one more segment, so it attends only to itself) and no mask, which is
    how transformers recognises packed sequences. Padding never has a loss."""
    import torch

    width = max(len(x["input_ids"]) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    packed = "position_ids" in batch[0]
    extra = torch.zeros((len(batch), width), dtype=torch.long)
    for r, x in enumerate(batch):
        n = len(x["input_ids"])
        ids[r, :n] = torch.tensor(x["input_ids"])
        labels[r, :n] = torch.tensor(x["labels"])
        if packed:
            extra[r, :n] = torch.tensor(x["position_ids"])
            extra[r, n:] = torch.arange(width - n)
        else:
            extra[r, :n] = 1
    out = {"input_ids": ids, "labels": labels}
    out["position_ids" if packed else "attention_mask"] = extra
    # Non-padding tokens (for tokens/s); the loop removes the key before the forward pass.
    out["real_tokens"] = sum(len(x["input_ids"]) for x in batch)
    return out
