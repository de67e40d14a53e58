"""Each Asclepius variant's trained context, the warning beyond it, and the visible answer cap."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from app.core.config import EngineConfig
from app.core.limits import answer_cap, context_warning, trained_context, variant_of
from app.core.models import describe
from app.core.types import ModelInfo


def info(name: str, ctx: int, file_name: str = "model.gguf", **kw: object) -> ModelInfo:
    return ModelInfo(
        path=f"/m/{file_name}",
        file_name=file_name,
        sha256="a" * 64,
        size_bytes=1,
        architecture="llama",
        name=name,
        context_length=ctx,
        file_type="Q4_K_M",
        parameter_count=7_000_000_000,
        prompt_style="asclepius",
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("name", "gguf_ctx", "family", "trained"),
    [
        ("Asclepius-7B", 2048, "LLaMA-1", 2048),
        ("Asclepius-R-13B", 2048, "LLaMA-1", 2048),
        ("Asclepius-Llama2-13B", 4096, "Llama-2", 4096),
        ("asclepius_llama-2-7b", 4096, "Llama-2", 4096),
        ("Asclepius-Llama3-8B", 8192, "Llama-3", 8192),
        ("Asclepius-Mistral-7B-v0.3", 32768, "Mistral", 8192),  # its config says 32768
    ],
)
def test_variants_and_their_trained_context(name, gguf_ctx, family, trained):
    m = info(name, gguf_ctx)
    assert variant_of(m).family == family and trained_context(m) == trained
    assert context_warning(m, trained) is None
    warning = context_warning(m, trained + 1)
    assert warning and f"trained on {trained}-token sequences" in warning


def test_variant_from_file_name_or_base_model_and_unknown_models():
    assert variant_of(info("my-finetune", 32768, file_name="asclepius-mistral-7b-q4_k_m.gguf")).family == "Mistral"
    prov = {"general.base_model.0.name": "Asclepius-Llama3-8B"}
    assert variant_of(info("export", 8192, provenance=prov)).family == "Llama-3"
    other = info("Some-Other-7B", 4096)
    assert variant_of(other) is None and trained_context(other) == 4096
    assert context_warning(other, 4096) is None
    assert "trained context is 4096" in context_warning(other, 8192)
    demo = info("Asclepius-7B", 32768, is_demo=True)  # the demo flag wins over any name
    assert variant_of(demo) is None


def test_mistral_warning_names_both_figures_and_registry_describes_it():
    m = info("Asclepius-Mistral-7B-v0.3", 32768)
    w = context_warning(m, 16384)
    assert "its GGUF says 32768" in w and "8192 or less" in w
    d = describe(m, n_ctx=EngineConfig(max_ctx=32768).context_for(m.context_length))
    assert (d["variant"], d["trained_context"]) == ("Mistral", 8192) and "context_warning" in d
    assert "context_warning" not in describe(m, n_ctx=EngineConfig(max_ctx=8192).context_for(m.context_length))
    json.dumps(d)  # plain data


def test_answer_cap_says_which_limit_applies():
    assert answer_cap(400, 400).describe() == "400 answer tokens (the task's preset)"
    cap = answer_cap(400, 128)
    assert (cap.tokens, cap.source) == (128, "setting")
    assert cap.describe() == "128 answer tokens (your global setting; the task's preset allows 400)"
    assert answer_cap(64, 128).tokens == 64  # a preset below the setting keeps its own cap
    assert (
        answer_cap(64, 128, explicit=300).describe() == "300 answer tokens (given explicitly; the task's preset is 64)"
    )


def test_tasks_command_shows_each_tasks_cap_under_a_global_setting(tmp_path, monkeypatch, capsys):
    from app.cli.main import main
    from app.core.config import AppConfig, GenerationDefaults, Paths, save_config
    from resources import TASKS

    monkeypatch.setenv("ASCLEPIUS_HOME", str(tmp_path))
    save_config(Paths.default(), replace(AppConfig(), generation=GenerationDefaults(max_tokens=100)))
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert any(t.max_tokens > 100 for t in TASKS)  # the check below is not vacuous
    for t in TASKS:
        if t.max_tokens > 100:
            assert f"up to 100 answer tokens (your global setting; the task's preset allows {t.max_tokens})" in out
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["answer_cap"] == min(100, r["max_tokens"]) for r in rows)


def test_ask_says_the_cap_and_warns_beyond_the_trained_context(tmp_path, capsys):
    from app.cli.ask import ask
    from app.cli.main import build_parser
    from app.core.config import AppConfig, GenerationDefaults
    from resources import get_task
    from tests.fakes import FakeContext, FakeEngine, fake_model

    note = tmp_path / "note.txt"
    note.write_text("Admitted with pneumonia. Creatinine 1.4 mg/dL on admission.")
    mistral = fake_model("Asclepius-Mistral-7B-v0.3", context_length=32768)
    engine = FakeEngine(model=mistral, n_ctx=16384)
    cfg = replace(AppConfig(), generation=GenerationDefaults(max_tokens=7))
    ctx = FakeContext(tmp_path, engine, cfg)

    def run(*extra: str) -> str:
        args = build_parser().parse_args(["ask", "--note", str(note), "--task", "qa", "--no-log", *extra, "Cr?"])
        assert ask(args, ctx, lambda work: work(threading.Event())) == 0
        return capsys.readouterr().err

    err = run()
    preset = get_task("qa").max_tokens
    assert f"-- answer cap: 7 answer tokens (your global setting; the task's preset allows {preset})" in err
    assert engine.requests[-1].sampling.max_tokens == 7  # what is said is what the service applied
    assert "-- warning: context 16384 is beyond what Asclepius-Mistral-7B-v0.3 was trained on" in err
    err = run("--max-tokens", "5")
    assert f"-- answer cap: 5 answer tokens (given explicitly; the task's preset is {preset})" in err
    engine.n_ctx = 8192
    assert "-- warning" not in run()
