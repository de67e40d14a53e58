"""``quantize convert`` takes the prompt style from the training manifest unless told otherwise."""

from __future__ import annotations

import json

import pytest

from quantize.checkpoint import TRAIN_MANIFEST, manifest_prompt_style
from quantize.convert import ConvertOptions
from quantize.errors import QuantizeError


def test_manifest_name_is_the_one_the_trainer_writes():
    from training.trainer import MANIFEST_NAME

    assert MANIFEST_NAME == TRAIN_MANIFEST


def test_convert_reads_the_style_from_the_manifest(tmp_path):
    out = tmp_path / "m.gguf"
    assert manifest_prompt_style(tmp_path) is None
    assert ConvertOptions(tmp_path, out).prompt_style == "asclepius"  # no manifest: the published default
    (tmp_path / TRAIN_MANIFEST).write_text(json.dumps({"prompt_style": "asclepius-train"}))
    assert ConvertOptions(tmp_path, out).prompt_style == "asclepius-train"
    assert ConvertOptions(tmp_path, out, prompt_style="plain-qa").prompt_style == "plain-qa"  # a flag wins
    (tmp_path / TRAIN_MANIFEST).write_text(json.dumps({"prompt_style": None, "stage": "pretrain"}))
    assert ConvertOptions(tmp_path, out).prompt_style == "asclepius"


def test_bad_manifests_are_reported(tmp_path):
    (tmp_path / TRAIN_MANIFEST).write_text("{not json")
    with pytest.raises(QuantizeError, match="not a readable training manifest"):
        ConvertOptions(tmp_path, tmp_path / "m.gguf")
    (tmp_path / TRAIN_MANIFEST).write_text(json.dumps({"prompt_style": "vicuna"}))
    with pytest.raises(QuantizeError, match="unknown prompt style 'vicuna'"):
        ConvertOptions(tmp_path, tmp_path / "m.gguf")
