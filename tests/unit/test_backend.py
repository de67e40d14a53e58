"""Each backend declares what it offers beyond ``ask``/``budget``/``close``, and the declaration is true."""

from __future__ import annotations

import pytest

from app.core.backend import EngineCapabilities, InferenceEngine
from app.core.openai_policy import EndpointSettings
from app.core.remote import RemoteEngine
from tests.fakes import FakeEngine

MANY = ("ask_many",)
TOKENIZER = ("style_for", "tokenize_prompt", "evaluated_tokens")
PREREAD = ("preread",)


def _backends() -> list[tuple[str, object, EngineCapabilities]]:
    from app.core.engine import LlamaCppEngine  # the class only: no model is loaded

    remote = RemoteEngine(EndpointSettings("http://127.0.0.1:9/v1", "m", concurrency=3), probe=False)
    return [
        ("llama.cpp", LlamaCppEngine, EngineCapabilities(ask_many=True, prompt_tokens=True, preread=True)),
        ("remote", remote, EngineCapabilities(concurrency=3)),
        ("fake", FakeEngine(), EngineCapabilities()),
    ]


@pytest.mark.parametrize("name", ["llama.cpp", "remote", "fake"])
def test_declared_capabilities_match_the_methods(name: str) -> None:
    _, engine, expected = next(b for b in _backends() if b[0] == name)
    caps = engine.capabilities  # type: ignore[attr-defined]
    assert caps == expected
    assert all(hasattr(engine, m) for m in MANY) == caps.ask_many
    assert all(hasattr(engine, m) for m in TOKENIZER) == caps.prompt_tokens
    assert all(hasattr(engine, m) for m in PREREAD) == caps.preread
    if not isinstance(engine, type):
        assert isinstance(engine, InferenceEngine)
