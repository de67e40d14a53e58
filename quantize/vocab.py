"""Tokenizer -> GGUF vocabulary, through gguf-py's vocab classes, with special ids checked against the
tokenizer itself (LLaMA-1 HF configs say BOS 0 / EOS 1; the SentencePiece model says 1 / 2)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantize.errors import QuantizeError

LLAMA3_PRE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

KNOWN_BPE_PRE: dict[str, str] = {LLAMA3_PRE_REGEX: "llama-bpe"}
"""Split regex of a byte-level BPE tokenizer -> llama.cpp pre-tokenizer name. llama.cpp's own converter
identifies a pre-tokenizer by hashing how a real vocabulary splits a probe string; that needs the real
vocabulary, so a retrained (or test) tokenizer would not match. The regex itself is what llama.cpp
re-implements per name, so comparing it is the check that matters."""


@dataclass
class VocabInfo:
    kind: str
    """``spm`` or ``bpe``."""
    tokenizer_model: str
    """``tokenizer.ggml.model``: ``llama`` or ``gpt2``."""
    pre: str | None
    tokens: list[bytes]
    scores: list[float]
    types: list[int]
    special: Any
    """A ``gguf.SpecialVocab`` with ids from the tokenizer."""
    notes: list[str] = field(default_factory=list)
    """Human-readable corrections made (wrong ids in config.json, padding)."""


def _bpe_pre(path: Path) -> str:
    tok = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    pre = tok.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre])
    regexes = [p.get("pattern", {}).get("Regex") for p in parts if p.get("type") == "Split"]
    for rx in regexes:
        if rx in KNOWN_BPE_PRE:
            return KNOWN_BPE_PRE[rx]
    raise QuantizeError(
        "tokenizer.json: byte-level BPE with a pre-tokenizer llama.cpp does not know; "
        f"supported: {', '.join(sorted(set(KNOWN_BPE_PRE.values())))} (Llama-3)"
    )


def _pad(info: VocabInfo, n_vocab: int) -> None:
    import gguf

    n_tok = len(info.tokens)
    if n_tok > n_vocab:
        raise QuantizeError(
            f"the tokenizer has {n_tok} tokens but the model's embedding has {n_vocab} rows "
            "(config.json vocab_size); the checkpoint and tokenizer do not belong together"
        )
    if n_tok < n_vocab:
        # Embedding rows beyond the tokenizer are padding (common after resizing to a multiple of 64);
        # llama.cpp needs one token per row, and marks these unused as its own converter does.
        for i in range(n_tok, n_vocab):
            info.tokens.append(f"[PAD{i}]".encode())
            info.scores.append(-1000.0)
            info.types.append(int(gguf.TokenType.UNUSED))
        info.notes.append(f"padded the vocabulary from {n_tok} to {n_vocab} tokens to match the embedding")


def _check_ids(info: VocabInfo, config: dict[str, Any], actual: dict[str, int]) -> None:
    for typ, tid in actual.items():
        claimed = config.get(f"{typ}_token_id")
        if isinstance(claimed, int) and claimed != tid:
            info.notes.append(f"config.json says {typ}_token_id={claimed}; the tokenizer says {tid}: using {tid}")
        info.special.special_token_ids[typ] = tid


def load_vocab(path: Path, config: dict[str, Any], n_vocab: int) -> VocabInfo:
    import gguf

    if (path / "tokenizer.model").is_file():
        spm = gguf.SentencePieceVocab(path)
        tokens, scores, types = [], [], []
        for text, score, ttype in spm.all_tokens():
            tokens.append(text)
            scores.append(score)
            types.append(int(ttype))
        special = _special_vocab(path, load_merges=False, n_vocab=n_vocab)
        info = VocabInfo("spm", "llama", None, tokens, scores, types, special)
        proc = spm.sentencepiece_tokenizer
        ids = {"bos": proc.bos_id(), "eos": proc.eos_id(), "unk": proc.unk_id(), "pad": proc.pad_id()}
        _check_ids(info, config, {k: v for k, v in ids.items() if v >= 0})
        # SentencePiece LLaMA tokenizers prepend BOS and never append EOS unless told otherwise.
        special.add_special_token.setdefault("bos", True)
        special.add_special_token.setdefault("eos", False)
    elif (path / "tokenizer.json").is_file():
        pre = _bpe_pre(path)
        try:
            bpe = gguf.BpeVocab(path)
        except FileNotFoundError:
            raise QuantizeError(
                "tokenizer.json is not a byte-level BPE tokenizer and there is no tokenizer.model"
            ) from None
        tokens, scores, types = [], [], []
        for text, score, ttype in bpe.all_tokens():
            tokens.append(text.encode("utf-8") if isinstance(text, str) else text)
            scores.append(score)
            types.append(int(ttype))
        special = _special_vocab(path, load_merges=True, n_vocab=n_vocab)
        info = VocabInfo("bpe", "gpt2", pre, tokens, scores, types, special)
        by_text = {t.decode("utf-8", "replace"): i for i, t in enumerate(tokens)}
        tcfg = _read_json(path / "tokenizer_config.json")
        ids = {}
        for typ in ("bos", "eos", "unk", "pad"):
            entry = tcfg.get(f"{typ}_token")
            content = entry.get("content") if isinstance(entry, dict) else entry
            if isinstance(content, str):
                if content not in by_text:
                    raise QuantizeError(f"tokenizer_config.json: {typ}_token {content!r} is not in the vocabulary")
                ids[typ] = by_text[content]
        _check_ids(info, config, ids)
    else:
        raise QuantizeError("no tokenizer: expected tokenizer.model (SentencePiece) or tokenizer.json (BPE)")
    for typ in ("bos", "eos"):
        if typ not in info.special.special_token_ids:
            raise QuantizeError(f"the tokenizer defines no {typ.upper()} token")
    _pad(info, n_vocab)
    return info


def _special_vocab(path: Path, load_merges: bool, n_vocab: int) -> Any:
    """gguf's SpecialVocab for merges and add-BOS/EOS flags only: ids come from the tokenizer (config.json
    ids are what is wrong in old checkpoints, and a ``pad_token_id`` of -1 would make it raise)."""
    import gguf

    special = gguf.SpecialVocab(path, load_merges=load_merges, special_token_types=(), n_vocab=n_vocab)
    tcfg = _read_json(path / "tokenizer_config.json")
    for typ in ("bos", "eos"):
        if isinstance(tcfg.get(f"add_{typ}_token"), bool):
            special.add_special_token[typ] = tcfg[f"add_{typ}_token"]
    return special


def _read_json(p: Path) -> dict[str, Any]:
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
