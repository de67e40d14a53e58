"""Training data: answer-only labels (exact), dropped-not-cut long examples, the pretraining token file,
packing that keeps examples apart, and clear errors for unusable data."""

from __future__ import annotations

import pytest

from tests.training.train_fixtures import SFT_ROWS, tiny_model, write_jsonl

pytest.importorskip("transformers", reason="the trainer tests need the train extra")

import itertools

from resources.prompt_tokens import tokens_after
from training.trainer import data as d

VARIANT_STYLE = [("llama1", "asclepius-train"), ("mistral", "asclepius"), ("llama3", "asclepius")]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from transformers import AutoTokenizer

    return {s: AutoTokenizer.from_pretrained(tiny_model(tmp_path_factory, s)) for s, _ in VARIANT_STYLE}


@pytest.mark.parametrize(("family", "style"), [*VARIANT_STYLE, ("llama1", "asclepius")])
def test_loss_tokens_are_exactly_answer_plus_eos(tokenizers, family, style):
    from resources.prompts import get_style

    tok = tokenizers[family]
    rows = [*SFT_ROWS, {"note": "Note quoting </s> and [Instruction End] verbatim.", "question": "Q?", "answer": "A."}]
    for row in rows:
        ex = d.sft_example(tok, style, row["note"], row["question"], row["answer"])
        ids, labels = ex["input_ids"], ex["labels"]
        answer = tokens_after(d.hf_tokenize(tok), "\n", row["answer"], False)
        assert answer and tok.decode(answer) == row["answer"]
        n_loss = sum(1 for x in labels if x != d.IGNORE)
        assert n_loss == len(answer) + 1
        # The loss tokens are the tail, equal to the inputs there, ending in EOS; nothing before has a loss.
        assert labels[-n_loss:] == ids[-n_loss:] == [*answer, tok.eos_token_id]
        assert all(x == d.IGNORE for x in labels[:-n_loss])
        # One BOS, first; no EOS inside the prompt even when the note spells one out.
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
        assert tok.eos_token_id not in ids[:-1]
        prompt = tok.decode(ids[1:-n_loss])
        assert prompt.strip() == get_style(style).render(row["note"], row["question"]).strip()
        tail = "[Instruction End] \n" if style == "asclepius" else "[Instruction End]\n"
        assert prompt.endswith(tail)


def test_long_examples_are_dropped_and_counted(tokenizers, tmp_path):
    tok = tokenizers["llama1"]
    long = {"note": "word " * 400, "question": "Q?", "answer": "A."}
    empty = {"note": "n", "question": " ", "answer": "A."}
    data = write_jsonl(tmp_path / "sft.jsonl", [*SFT_ROWS, long, empty])
    examples, stats = d.build_sft(data, tok, "asclepius-train", max_length=400)
    assert (stats.rows, stats.examples, stats.dropped_truncated, stats.dropped_empty) == (6, 4, 1, 1)
    assert all(len(e["input_ids"]) <= 400 for e in examples)
    assert stats.answer_tokens == sum(sum(1 for x in e["labels"] if x != d.IGNORE) for e in examples)


def test_sft_reads_csv_and_arrow_the_same_as_jsonl(tokenizers, tmp_path):
    import csv

    import datasets

    tok = tokenizers["llama1"]
    ref, _ = d.build_sft(write_jsonl(tmp_path / "a.jsonl", SFT_ROWS), tok, "asclepius-train", 512)
    with (tmp_path / "b.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SFT_ROWS[0]))
        w.writeheader()
        w.writerows(SFT_ROWS)
    datasets.Dataset.from_list(SFT_ROWS).save_to_disk(str(tmp_path / "arrow"))
    for path in (tmp_path / "b.csv", tmp_path / "arrow"):
        assert d.build_sft(path, tok, "asclepius-train", 512)[0] == ref


def test_bad_sft_data_gives_clear_errors(tokenizers, tmp_path):
    tok = tokenizers["llama1"]
    with pytest.raises(d.DataError, match="is empty"):
        d.build_sft(write_jsonl(tmp_path / "e.jsonl", []), tok, "asclepius-train", 512)
    bad = write_jsonl(tmp_path / "m.jsonl", [{"note": "n", "instruction": "q", "output": "a"}])
    with pytest.raises(d.DataError, match="missing question, answer"):
        d.build_sft(bad, tok, "asclepius-train", 512)
    with pytest.raises(d.DataError, match="does not exist"):
        d.build_sft(tmp_path / "nope.jsonl", tok, "asclepius-train", 512)
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(d.DataError, match="not UTF-8"):
        d.build_sft(tmp_path / "bin.jsonl", tok, "asclepius-train", 512)
    (tmp_path / "broken.jsonl").write_text('{"note": ')
    with pytest.raises(d.DataError, match="not valid JSON"):
        d.build_sft(tmp_path / "broken.jsonl", tok, "asclepius-train", 512)


def test_pretrain_token_file_has_one_bos_per_document_and_eos_between(tokenizers, tmp_path):
    import numpy as np

    tok = tokenizers["llama1"]
    docs = ["First note text.", "", "Second note, a bit longer than the first one.", "Third."]
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"text": t} for t in docs])
    bin_path, info = d.tokenize_corpus(corpus, tok, tmp_path / "cache")
    tokens = np.fromfile(bin_path, dtype=info.dtype).tolist()
    expected = []
    for t in docs:
        if t:
            expected += [tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"], tok.eos_token_id]
    assert tokens == expected
    assert (info.documents, info.empty_documents, info.tokens) == (3, 1, len(expected))
    assert tokens.count(tok.bos_token_id) == 3 and tokens.count(tok.eos_token_id) == 3
    blocks = d.PretrainBlocks(bin_path, info.dtype, block=8)
    assert len(blocks) == len(expected) // 8 and blocks.dropped_tokens == len(expected) % 8
    assert blocks[1]["input_ids"] == expected[8:16] == blocks[1]["labels"]
    # Tokenized once: a second call reuses the file (same data and tokenizer), a changed corpus does not.
    mtime = bin_path.stat().st_mtime_ns
    assert d.tokenize_corpus(corpus, tok, tmp_path / "cache")[0].stat().st_mtime_ns == mtime
    write_jsonl(corpus, [{"text": "Other."}])
    assert d.tokenize_corpus(corpus, tok, tmp_path / "cache")[0] != bin_path


def test_pretrain_errors(tokenizers, tmp_path):
    tok = tokenizers["llama1"]
    with pytest.raises(d.DataError, match="no non-empty documents"):
        d.tokenize_corpus(write_jsonl(tmp_path / "e.jsonl", [{"text": "  "}]), tok, tmp_path / "c")
    with pytest.raises(d.DataError, match="needs one of the columns text, note"):
        d.tokenize_corpus(write_jsonl(tmp_path / "w.jsonl", [{"body": "x"}]), tok, tmp_path / "c")


def _per_example_losses(model, batch, spans):
    import torch

    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
    lp = torch.log_softmax(logits.float(), -1)
    out = []
    for r, start, end in spans:
        labels = batch["labels"][r, start + 1 : end]
        keep = labels != d.IGNORE
        picked = lp[r, start : end - 1].gather(-1, labels.clamp(min=0)[:, None])[:, 0]
        out.append(float(-(picked[keep]).mean()))
    return out


@pytest.mark.parametrize("family", ["llama1", "mistral"])
@pytest.mark.parametrize("attention", ["sdpa", "asclepius_packed_sdpa"])
def test_packed_loss_equals_unpacked_loss_per_example(tmp_path_factory, family, attention):
    """transformers' SDPA with the block-diagonal mask it builds from position ids, and the trainer's
    per-example SDPA; Mistral for grouped-query attention."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.trainer.attention import register

    register()
    path = tiny_model(tmp_path_factory, family)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=attention).eval()
    examples = [d.sft_example(tok, "asclepius-train", **{k: r[k] for k in d.SFT_COLUMNS}) for r in SFT_ROWS * 2]
    lengths = [len(e["input_ids"]) for e in examples]
    packed = d.pack_examples(examples, max_length=max(lengths) * 3)
    assert len(packed) < len(examples)  # several examples share a row, or the test would prove nothing
    assert sorted(len(p["input_ids"]) for p in packed) and all(len(p["input_ids"]) <= max(lengths) * 3 for p in packed)

    single = [_per_example_losses(model, d.collate([e]), [(0, 0, len(e["input_ids"]))])[0] for e in examples]
    batch = d.collate(packed)
    spans, by_row = [], []
    for r, row in enumerate(packed):
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0] + [len(row["input_ids"])]
        for a, b in itertools.pairwise(starts):
            spans.append((r, a, b))
            by_row.append(row["input_ids"][a:b])
    packed_losses = _per_example_losses(model, batch, spans)
    expected = [single[next(i for i, e in enumerate(examples) if e["input_ids"] == ids)] for ids in by_row]
    assert len(packed_losses) == len(examples)
    assert packed_losses == pytest.approx(expected, abs=1e-5)  # fp32 reduction-order noise is ~1e-6
    # Control: the same rows with one causal mask over the whole row (no per-example attention) differ.
    leaky = {**batch, "attention_mask": torch.ones_like(batch["input_ids"])}
    del leaky["position_ids"]
    assert _per_example_losses(model, leaky, spans) != pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize(("family", "style"), VARIANT_STYLE)
def test_sft_strips_newlines_only_as_the_reference_does(tokenizers, family, style):
    """The reference strips "\\n" from the ends of every field (``v.strip("\\n")``) and keeps outer spaces and
    tabs; stripping all whitespace (the old rule) tokenized such rows differently from the reference."""
    from resources.prompts import get_style

    tok = tokenizers[family]
    note, question, answer = "\n  Indented note line.\t\n", "\n What dose?  ", "\n\t81 mg daily.\n"
    ref = {k: v.strip("\n") for k, v in (("note", note), ("question", question), ("answer", answer))}
    ex = d.sft_example(tok, style, note, question, answer)
    assert ex == d.sft_example(tok, style, ref["note"], ref["question"], ref["answer"])
    n_loss = sum(1 for x in ex["labels"] if x != d.IGNORE)
    prompt = tok.decode(ex["input_ids"][1:-n_loss])
    assert prompt == get_style(style).render(ref["note"], ref["question"])
    assert ex["labels"][-n_loss:-1] == tokens_after(d.hf_tokenize(tok), prompt[-1], ref["answer"], False)
    # The other rule, as a recipe option: all outer whitespace goes (the app's rule at inference).
    bare = d.sft_example(tok, style, "Indented note line.", "What dose?", "81 mg daily.")
    assert d.sft_example(tok, style, note, question, answer, strip="whitespace") == bare != ex
