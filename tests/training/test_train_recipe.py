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
ADAPTER_RECIPES = {"asclepius-7b-sft-lora": ("lora", 80.0), "asclepius-7b-sft-qlora": ("qlora", 24.0)}
"""Adapter recipes: the adapter and the one GPU's memory (GB) each is written for."""
REFERENCE_PATHS = [p for p in all_recipe_paths() if p.stem not in ADAPTER_RECIPES]


def test_every_variant_has_a_pretrain_and_an_sft_recipe():
    names = {p.stem for p in all_recipe_paths()}
    assert names == {f"{v}-{s}" for v in VARIANTS for s in ("pretrain", "sft")} | set(ADAPTER_RECIPES)


@pytest.mark.parametrize("path", REFERENCE_PATHS, ids=lambda p: p.stem)
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
    assert r.adapter == "none"


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


@pytest.mark.parametrize("name", sorted(ADAPTER_RECIPES))
def test_adapter_recipes_keep_the_reference_sft_and_fit_their_gpu(name):
    from training.trainer.plan import ModelShape, estimate

    r, ref = load_recipe(name), load_recipe("asclepius-7b-sft")
    adapter, gpu_gb = ADAPTER_RECIPES[name]
    assert r.adapter == adapter and r.lora.r == 64 and r.learning_rate == 2e-4
    same = (
        "stage",
        "family",
        "base_model",
        "max_length",
        "global_batch_size",
        "epochs",
        "warmup_ratio",
        "prompt_style",
    )
    assert {f: getattr(r, f) for f in same} == {f: getattr(ref, f) for f in same}
    plan = estimate(r, ModelShape.for_base(r.base_model), gpus=1, gpu_mem_gb=gpu_gb)
    assert plan.fits and plan.adapter == adapter and 150e6 < plan.trainable_params < 170e6  # r 64, 7 projections


def test_adapter_fields_and_their_overrides():
    r = load_recipe("asclepius-7b-sft", parse_overrides(["adapter=lora", "lora.r=16", "lora.target_modules=[q_proj]"]))
    assert r.adapter == "lora" and r.lora.r == 16 and r.lora.target_modules == ("q_proj",)
    assert r.lora.alpha == 16.0 and r.lora.quant_type == "nf4"  # the rest keep their defaults
    assert r.with_overrides({"lora.dropout": 0.0}).lora.dropout == 0.0 and r.with_overrides({}).lora.r == 16
    assert r.to_dict()["lora"]["target_modules"] == ["q_proj"]  # JSON types for recipe.json and manifests
    assert load_recipe("asclepius-7b-sft").adapter == "none"
    q = load_recipe("asclepius-7b-sft", {"adapter": "qlora", "lora.compute_dtype": "float16"})
    assert q.lora.compute_dtype == "float16"


def test_adapter_settings_are_validated_with_every_problem_named(tmp_path):
    def problems(text):
        with pytest.raises(RecipeError) as exc:
            load_recipe(_write(tmp_path, BASE + text))
        return str(exc.value)

    assert "adapter: expected one of 'none', 'lora', 'qlora'" in problems("adapter: dora\n")
    msg = problems("adapter: lora\nlora:\n  r: 0\n  dropout: 1.0\n  target_modules: []\n")
    assert "lora.r must be > 0" in msg and "lora.dropout must be in [0, 1)" in msg
    assert "lora.target_modules must name at least one module" in msg
    assert "lora.target_modules: expected a list of str" in problems("adapter: lora\nlora: {target_modules: q_proj}\n")
    assert "lora.r: expected int" in problems("adapter: lora\nlora: {r: big}\n")
    assert "unknown field 'lora.rank'" in problems("adapter: lora\nlora: {rank: 8}\n")
    # Settings that would do nothing are refused rather than ignored.
    assert "lora.r is set but adapter is none" in problems("lora: {r: 8}\n")
    assert "lora.quant_type applies to adapter qlora only" in problems("adapter: lora\nlora: {quant_type: fp4}\n")
    with pytest.raises(RecipeError, match="unknown recipe field"):
        load_recipe("asclepius-7b-sft").with_overrides({"lora.rank": 8})
