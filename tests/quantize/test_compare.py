"""``quantize compare``: the streaming arithmetic against a direct computation, and the command on real GGUFs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from quantize import compare_stats
from quantize.cli import main
from quantize.compare import Vocabulary, make_chunks, note_stream, score_chunks, vocabulary_mismatch

VOCAB = 50


class FakeLogits:
    """Logits that depend on the whole prefix (as a causal model's do), from a seeded table; records what
    positions it was asked for."""

    def __init__(self, seed: int, noise: float = 0.0) -> None:
        self.n_vocab = VOCAB
        rng = np.random.default_rng(seed)
        self.table = rng.normal(0, 3, size=(VOCAB, VOCAB)).astype(np.float32)
        self.noise = noise
        self.asked: list[tuple[int, int]] = []

    def full(self, chunk: Sequence[int]) -> np.ndarray:
        """Logits at every position of one chunk."""
        rows = []
        for pos in range(len(chunk)):
            prefix = np.asarray(chunk[: pos + 1])
            row = self.table[prefix[-1]] + 0.1 * self.table[prefix].mean(axis=0)
            if self.noise:
                row = row + self.noise * np.sin(np.arange(VOCAB) * (pos + 1) + prefix.sum())
            rows.append(row)
        return np.asarray(rows, dtype=np.float32)

    def chunk_logits(self, chunks: Sequence[Sequence[int]], first: int) -> np.ndarray:
        self.asked.append((len(chunks), first))
        return np.concatenate([self.full(c)[first : len(c) - 1] for c in chunks])


def direct(ref: FakeLogits, cand: FakeLogits, chunks: list[list[int]], first: int) -> dict[str, float]:
    """Every figure from whole-text arrays in float64: the computation the streamed one must equal."""
    kl, same, nll_r, nll_c = [], [], [], []
    for c in chunks:
        a = ref.full(c).astype(np.float64)[first:-1]
        b = cand.full(c).astype(np.float64)[first:-1]
        la = a - np.log(np.exp(a).sum(1, keepdims=True))
        lb = b - np.log(np.exp(b).sum(1, keepdims=True))
        kl += list((np.exp(la) * (la - lb)).sum(1))
        same += list(a.argmax(1) == b.argmax(1))
        t = np.asarray(c[first + 1 :])
        nll_r += list(-la[np.arange(len(t)), t])
        nll_c += list(-lb[np.arange(len(t)), t])
    return {
        "positions": len(kl),
        "kl_mean": float(np.mean(kl)),
        "kl_median": float(np.median(kl)),
        "kl_p99": float(np.percentile(kl, 99)),
        "kl_max": float(np.max(kl)),
        "top1_agreement": float(np.mean(same)),
        "ppl_ref": float(np.exp(np.mean(nll_r))),
        "ppl_candidate": float(np.exp(np.mean(nll_c))),
        "ppl_ratio": float(np.exp(np.mean(nll_c) - np.mean(nll_r))),
    }


@pytest.mark.parametrize("per_call", [1, 3])
def test_streamed_figures_equal_a_direct_computation(per_call: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks of 3 rows inside each call, so the block loop and the join are exercised too.
    monkeypatch.setattr(compare_stats, "BLOCK_ELEMENTS", 3 * VOCAB)
    rng = np.random.default_rng(7)
    stream = [int(x) for x in rng.integers(1, VOCAB, size=7 * 20 + 5)]
    chunks = make_chunks(stream, 20, bos=0)
    ref, cand = FakeLogits(1), FakeLogits(1, noise=0.8)
    got = score_chunks(ref, cand, chunks, first=10, per_call=per_call)
    want = direct(ref, cand, chunks, 10)
    assert got.positions == want["positions"] == 7 * 9
    for key, value in want.items():
        assert getattr(got, key) == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert 0 < got.top1_agreement < 1 and got.kl_mean > 0.01  # the fixture really differs
    assert ref.asked == [(len(g), 10) for g in (chunks[i : i + per_call] for i in range(0, 7, per_call))]


def test_identical_logits_give_exactly_zero_and_a_shift_gives_nothing() -> None:
    logits = np.random.default_rng(3).normal(0, 5, size=(11, 300)).astype(np.float32)
    targets = np.arange(11)
    same = compare_stats.position_stats(logits, logits.copy(), targets)
    assert (same.kl == 0).all() and same.same_top.all()
    # A constant added to every logit of a row leaves the distribution unchanged.
    shifted = compare_stats.position_stats(logits, logits + np.float32(3.5), targets)
    assert np.abs(shifted.kl).max() < 1e-5
    np.testing.assert_allclose(shifted.nll_cand, shifted.nll_ref, rtol=1e-5)


def test_chunks_are_cut_like_llama_perplexity() -> None:
    stream = list(range(1, 24))  # 23 tokens, ctx 10: two chunks, 3 tokens of tail
    chunks = make_chunks(stream, 10, bos=99)
    assert chunks == [[99, *range(2, 11)], [99, *range(12, 21)]]
    assert make_chunks(stream, 10, bos=None)[1][0] == 11
    assert make_chunks(stream[:9], 10, bos=99) == []
    seen: list[str] = []
    note_stream(lambda t: seen.append(t) or [1], [("a", "one\n"), ("b", "two\n\n")])
    assert seen == ["one", "two\n"]  # one trailing newline dropped, as ``llama-perplexity -f`` does


def test_vocabulary_mismatch_names_the_difference() -> None:
    v = Vocabulary((b"<s>", b"a", b"b"), 1, 0)
    assert vocabulary_mismatch(v, v) is None
    assert "3 tokens in the reference, 2" in str(vocabulary_mismatch(v, Vocabulary((b"<s>", b"a"), 1, 0)))
    assert "token 2 is b'b'" in str(vocabulary_mismatch(v, Vocabulary((b"<s>", b"a", b"c"), 1, 0)))
    assert "BOS" in str(vocabulary_mismatch(v, Vocabulary(v.tokens, 1, None)))


# --- the command on real files --------------------------------------------------------------------------


@pytest.fixture
def note(tmp_path: Path) -> Path:
    p = tmp_path / "note.txt"
    p.write_text(
        "Patient is a 67-year-old man admitted with chest pain. Troponin was 0.4 ng/mL. He was started on "
        "aspirin 81 mg daily and metoprolol 25 mg twice daily, and discharged home on day three.\n",
        encoding="utf-8",
    )
    return p


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["quantize", "compare", *args, "-q"])
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_model_against_itself_is_exactly_zero(demo_model, note: Path, capsys) -> None:
    path = str(demo_model.path)
    code, out, err = run(capsys, path, path, "--notes", str(note), "--ctx", "16", "--threads", "2", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["positions"] == r["chunks"] * 7 and r["chunks"] >= 2
    assert r["kl_mean"] == 0.0 and r["kl_median"] == 0.0 and r["kl_p99"] == 0.0 and r["kl_max"] == 0.0
    assert r["top1_agreement"] == 1.0
    assert r["ppl_ratio"] == 1.0 and r["ppl_ref"] == r["ppl_candidate"] > 1
    # Two chunks per decode call (separate sequences) score the same text to the same figures.
    code, out, err = run(capsys, path, path, "--notes", str(note), "--ctx", "16", "--batch", "32", "--json")
    assert code == 0, err
    r2 = json.loads(out)
    assert r2["kl_max"] == 0.0 and r2["positions"] == r["positions"]
    assert r2["ppl_ref"] == pytest.approx(r["ppl_ref"], rel=1e-4)


def test_different_vocabularies_are_refused_before_any_work(
    demo_model, tiny_llama_gguf: Path, note: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import quantize.compare_llama as cl

    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded for evaluation")

    monkeypatch.setattr(cl, "LlamaLogits", no_evaluation)
    code, _, err = run(capsys, str(demo_model.path), str(tiny_llama_gguf), "--notes", str(note), "--ctx", "16")
    assert code == 2
    assert "different vocabularies (262,144 tokens in the reference, 512 in the candidate)" in err


def test_bad_files_and_notes_get_clear_messages(tiny_llama_gguf: Path, note: Path, tmp_path: Path, capsys) -> None:
    tiny = str(tiny_llama_gguf)
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model", encoding="utf-8")
    truncated = tmp_path / "truncated.gguf"
    data = tiny_llama_gguf.read_bytes()
    truncated.write_bytes(data[: len(data) - 1000])
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    cases = [
        ([str(tmp_path / "none.gguf"), tiny, "--notes", str(note)], 4, "no such file"),
        ([tiny, str(fake), "--notes", str(note)], 4, "not a readable GGUF"),
        ([tiny, str(truncated), "--notes", str(note), "--ctx", "16"], 4, "cannot load"),
        ([tiny, tiny, "--notes", str(empty)], 3, "no notes found"),
        ([tiny, tiny, "--notes", str(tmp_path / "missing.txt")], 3, "cannot read notes"),
        ([tiny, tiny, "--notes", str(note), "--ctx", "4096"], 3, "fewer than one chunk of --ctx 4096"),
    ]
    for args, want_code, fragment in cases:
        code, _, err = run(capsys, *args)
        assert (code, fragment in err) == (want_code, True), (args, err)


def test_tiny_llama_f32_against_its_q8_0(tiny_llama_gguf: Path, note: Path, tmp_path: Path, capsys) -> None:
    """A real quantization differs a little: positive KL, ratio near 1 (random weights: small but nonzero)."""
    from quantize.quant import quantize_gguf

    q8 = tmp_path / "tiny-q8_0.gguf"
    quantize_gguf(tiny_llama_gguf, q8, "Q8_0", threads=2)
    copy = tmp_path / "ref.gguf"
    shutil.copy(tiny_llama_gguf, copy)
    code, out, err = run(capsys, str(copy), str(q8), "--notes", str(note), "--ctx", "16", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert 0 < r["kl_mean"] < 0.05 and r["kl_max"] >= r["kl_p99"] >= r["kl_median"] >= 0
    assert 0.9 < r["ppl_ratio"] < 1.1 and 0.5 < r["top1_agreement"] <= 1.0
