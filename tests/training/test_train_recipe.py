"""Every recipe loads and validates; bad recipes fail once with every problem named."""

from __future__ import annotations

import pytest

pytest.importorskip("yaml", reason="recipes need the train extra (pyyaml)")

from training.trainer.recipe import Recipe, RecipeError, all_recipe_paths, load_recipe, parse_overrides

EXPECTED_LENGTH = {"llama1": 2048, "llama2": 4096, "llama3": 8192, "mistral": 8192}
# LLaMA-1/2 variants were trained without the space after [Instruction End]; Llama-3/Mistral with it.
EXPECTED_STYLE = {
    "llama1": "asclepius-train",
    "llama2": "asclepius-train",
    "llama3": "asclepius",
    "mistral": "asclepius",
}
VARIANTS = ("asclepius-7b", "asclepius-13b", "llama2-7b", "llama2-13b", "llama3-8b", "mistral-7b")


def test_every_variant_has_a_pretrain_and_an_sft_recipe():
    names = {p.stem for p in all_recipe_paths()}
    assert names == {f"{v}-{s}" for v in VARIANTS for s in ("pretrain", "sft")}


@pytest.mark.parametrize("path", all_recipe_paths(), ids=lambda p: p.stem)
def test_recipe_loads_with_the_reference_hyperparameters(path):
    r = load_recipe(path)
    assert r.name == path.stem and r.stage == path.stem.rsplit("-", 1)[1]
    assert r.max_length == EXPECTED_LENGTH[r.family]
    assert (r.learning_rate, r.warmup_ratio, r.weight_decay, r.global_batch_size) == (2e-5, 0.03, 0.0, 128)
    assert r.epochs == (1 if r.stage == "pretrain" else 3)
    assert r.gradient_checkpointing and r.precision == "auto"
    assert r.prompt_style == (EXPECTED_STYLE[r.family] if r.stage == "sft" else None)
    # The global batch is stated once; 8 or 16 GPUs keep 128 sequences per step.
    assert r.grad_accum(8) * 8 * r.per_device_batch_size == 128
    assert r.grad_accum(16) * 16 * r.per_device_batch_size == 128


def test_recipe_by_name_and_overrides_are_typed():
    r = load_recipe("asclepius-7b-sft", parse_overrides(["learning_rate=1e-3", "packing=true", "max_steps=5"]))
    assert r.learning_rate == 1e-3 and r.packing is True and r.max_steps == 5
    assert r.with_overrides({"epochs": 2}).epochs == 2


def _write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


BASE = "name: x\nstage: sft\nfamily: llama1\nbase_model: b\nmax_length: 512\nprompt_style: asclepius-train\n"


def test_unknown_field_is_named(tmp_path):
    with pytest.raises(RecipeError, match="unknown field 'learning_rat'"):
        load_recipe(_write(tmp_path, BASE + "learning_rat: 1e-3\n"))


def test_wrong_types_are_all_listed_at_once(tmp_path):
    with pytest.raises(RecipeError) as exc:
        load_recipe(_write(tmp_path, BASE + "per_device_batch_size: two\npacking: 3\nlearning_rate: fast\n"))
    msg = str(exc.value)
    assert "per_device_batch_size: expected int, got str 'two'" in msg
    assert "packing: expected bool" in msg and "learning_rate: expected float" in msg


def test_missing_required_field_and_bad_values(tmp_path):
    with pytest.raises(RecipeError, match="missing required field 'max_length'"):
        load_recipe(_write(tmp_path, BASE.replace("max_length: 512\n", "")))
    with pytest.raises(RecipeError, match="warmup_ratio must be in"):
        load_recipe(_write(tmp_path, BASE + "warmup_ratio: 1.5\n"))
    with pytest.raises(RecipeError, match="unknown prompt_style 'alpaca'"):
        load_recipe(_write(tmp_path, BASE.replace("asclepius-train", "alpaca")))
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(_write(tmp_path, "- a\n- b\n"))


def test_unknown_override_and_malformed_set():
    r = load_recipe("llama3-8b-sft")
    with pytest.raises(RecipeError, match="unknown recipe field"):
        r.with_overrides({"lr": 1.0})
    with pytest.raises(RecipeError, match="field=value"):
        parse_overrides(["learning_rate"])
    with pytest.raises(RecipeError, match="expected int"):
        r.with_overrides({"max_length": "long"})


def test_global_batch_not_divisible_by_world_size():
    r = load_recipe("asclepius-7b-pretrain")
    with pytest.raises(RecipeError, match="not divisible by per_device_batch_size 2 x world size 3"):
        r.grad_accum(3)
    with pytest.raises(RecipeError, match="not a multiple of per_device_batch_size"):
        Recipe(name="x", stage="pretrain", family="llama1", base_model="b", max_length=8, global_batch_size=5)


def test_family_decides_the_training_prompt_and_bounds_the_length(tmp_path):
    """The docstring said so, and nothing did: a Llama-3 recipe with the LLaMA-1 prompt was accepted, and a
    2,048-position model took 8,192-token blocks."""
    no_style = BASE.replace("prompt_style: asclepius-train\n", "")
    assert load_recipe(_write(tmp_path, no_style)).prompt_style == "asclepius-train"
    llama3 = no_style.replace("family: llama1", "family: llama3")
    assert load_recipe(_write(tmp_path, llama3)).prompt_style == "asclepius"
    with pytest.raises(RecipeError, match="prompt_style 'asclepius-train' is not the llama3 training prompt"):
        load_recipe("llama3-8b-sft", {"prompt_style": "asclepius-train"})
    with pytest.raises(RecipeError, match="prompt_style 'asclepius' is not the llama1 training prompt"):
        load_recipe("asclepius-7b-sft", {"prompt_style": "asclepius"})
    with pytest.raises(RecipeError, match="max_length 4096 exceeds the llama1 context of 2048 positions"):
        load_recipe("asclepius-7b-pretrain", {"max_length": 4096})
    assert load_recipe("llama2-7b-pretrain").max_length == 4096


def test_strip_text_is_an_sft_option_with_the_reference_default(tmp_path):
    assert load_recipe("asclepius-7b-sft").strip_text == "newlines"
    assert load_recipe("asclepius-7b-sft", {"strip_text": "whitespace"}).strip_text == "whitespace"
    with pytest.raises(RecipeError, match="strip_text: expected one of 'newlines', 'whitespace'"):
        load_recipe("asclepius-7b-sft", {"strip_text": "spaces"})
    with pytest.raises(RecipeError, match="strip_text applies to sft only"):
        load_recipe("asclepius-7b-pretrain", {"strip_text": "whitespace"})
