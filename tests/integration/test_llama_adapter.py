"""llama-cpp-python internals the engine relies on (app/core/llama_adapter.py), checked on the demo model.

If an upgrade renames or retypes any of them, this fails by name instead of the engine corrupting a
context at run time. Fix the adapter (only it), then this test.
"""

from __future__ import annotations

import ctypes
import inspect

import llama_cpp
import numpy as np

from app.core.llama_adapter import LlamaInternals
from app.core.types import AskRequest, SamplingParams


def test_the_private_attributes_exist_with_the_expected_types(demo_engine):
    llm = demo_engine._llm
    assert llama_cpp.__version__ == "0.3.36", "re-check every name below against the new version, then pin it"
    assert isinstance(llm.n_tokens, int)
    assert isinstance(llm.input_ids, np.ndarray) and llm.input_ids.shape == (demo_engine.n_ctx,)
    assert np.issubdtype(llm.input_ids.dtype, np.integer)
    assert isinstance(llm._requires_eval, bool)
    rm = llm._ctx.kv_cache_seq_rm
    assert list(inspect.signature(rm).parameters) == ["seq_id", "p0", "p1"]
    assert isinstance(llm.ctx, ctypes.c_void_p | int) or llm.ctx is not None
    for name in ("top_k", "top_p", "min_p", "typical_p", "temp", "repeat_penalty"):
        assert name in inspect.signature(llm.generate).parameters, name


def test_the_low_level_functions_have_the_expected_ctypes_signatures():
    expected = {
        "llama_state_seq_get_size": 2,
        "llama_state_seq_get_data": 4,
        "llama_state_seq_set_data": 4,
        "llama_set_abort_callback": 3,
        "llama_vocab_is_eog": 2,
        "llama_vocab_is_control": 2,
        "llama_model_get_vocab": 1,
        "llama_log_set": 2,
        "llama_memory_seq_pos_min": 2,
        "llama_get_memory": 1,
        "llama_model_n_swa": 1,
    }
    for name, n_args in expected.items():
        fn = getattr(llama_cpp, name)
        assert len(fn.argtypes) == n_args, name
    assert llama_cpp.ggml_abort_callback is not None and llama_cpp.llama_log_callback is not None


def test_keep_first_save_and_restore_round_trip(demo_engine):
    demo_engine.ask(AskRequest("Creatinine 1.4 mg/dL on admission.", "qa", "Creatinine?", SamplingParams(max_tokens=4)))
    ll = LlamaInternals(demo_engine._llm)
    with demo_engine._lock:
        n = ll.n_tokens
        tokens = [int(t) for t in demo_engine._llm.input_ids[:n]]
        assert n > 8 and ll.live_prefix_len(tokens) == n
        ll.keep_first(8)
        assert ll.n_tokens == 8 and ll.live_prefix_len(tokens) == 8
        data = ll.save_sequence()
        assert data is not None and len(data) > 0
        ll.keep_first(0)
        assert ll.n_tokens == 0
        assert ll.restore_sequence(data, tokens[:8])
        assert ll.n_tokens == 8 and ll.live_prefix_len(tokens) == 8 and demo_engine._llm._requires_eval


def test_a_prefix_whose_window_cells_are_gone_is_not_live(demo_model, monkeypatch):
    """Gemma 3's sliding-window layers keep about n_swa positions per sequence. Once early cells are
    overwritten (llama.cpp then reports a sequence's smallest position > 0), continuing after a reused
    prefix attends to positions that are gone: a whole-suite run saw the shared engine answer "19 years old"
    where a fresh one said "35 years old.". Such a prefix must not count as live: the context is cleared so
    the prompt is evaluated whole. (Which run of asks makes llama.cpp overwrite the cells depends on cache
    sizes; here llama.cpp's answer about the smallest position is replaced to pin the rule.)"""
    import llama_cpp

    from app.core.config import EngineConfig
    from app.core.engine import LlamaCppEngine
    from app.core.types import AskRequest, SamplingParams

    cfg = EngineConfig(n_threads=2, n_ctx=1024, parallel=1, kv_cache_mb=0, kv_disk_mb=0)
    with LlamaCppEngine(demo_model, cfg) as engine:
        engine.ask(AskRequest("Patient admitted with pneumonia.", "qa", "Why?", SamplingParams(max_tokens=4)))
        internals, llm = engine._internals, engine._llm
        tokens = list(llm.input_ids[: llm.n_tokens])
        n_swa = llama_cpp.llama_model_n_swa(llm.model)
        assert n_swa > 0 and len(tokens) > 10
        real = llama_cpp.llama_memory_seq_pos_min(llama_cpp.llama_get_memory(llm.ctx), 0)
        assert real == 0 and internals.live_prefix_len(tokens[:10]) == 10  # intact: reused
        monkeypatch.setattr(llama_cpp, "llama_memory_seq_pos_min", lambda mem, seq: 1)
        assert internals.live_prefix_len(tokens[:10]) == 0  # position 0 gone: not reusable
        assert internals.n_tokens == 0  # and the context was cleared, so generate() cannot reuse it either
