"""The shared tiny-LLaMA GGUF fixture is what the rest of the suite is promised."""

from __future__ import annotations

import hashlib

from quantize.gguf_io import inspect_gguf
from quantize.verify import load_llama
from resources.prompts import ASCLEPIUS
from tests.fixtures_llama import build_tiny_llama_gguf


def test_fixture_metadata(tiny_llama_gguf):
    meta = inspect_gguf(tiny_llama_gguf).metadata
    assert meta["general.architecture"] == "llama"
    assert meta["llama.context_length"] == 2048
    assert meta["tokenizer.ggml.model"] == "llama"
    assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert meta["asclepius.prompt_style"] == ASCLEPIUS.id
    assert meta["asclepius.prompt_style_version"] == ASCLEPIUS.version


def test_fixture_runs_the_asclepius_prompt(tiny_llama_gguf):
    llm = load_llama(tiny_llama_gguf, n_ctx=2048, logits_all=False)
    prompt = ASCLEPIUS.render("Pt is a 67 yo F admitted with CHF exacerbation; furosemide 40 mg IV.", "List meds.")
    ids = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    assert ids[0] == 1 and 100 < len(ids) < 2048
    out = llm.create_completion(prompt, max_tokens=12, temperature=0.0)
    assert out["usage"]["prompt_tokens"] == len(ids)
    assert 1 <= out["usage"]["completion_tokens"] <= 12


def test_fixture_is_deterministic(tiny_llama_gguf, tmp_path):
    again = build_tiny_llama_gguf(tmp_path)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (tiny_llama_gguf, again)]
    assert digest[0] == digest[1]
