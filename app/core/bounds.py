"""Numeric ranges and defaults every front end checks against: defined once, imported everywhere.

A setting, a command-line flag and a config value that mean the same thing take their range from here, so
the Settings screen, ``argparse`` and the config file can never accept different numbers.
"""

from __future__ import annotations

import os

from resources.tasks import REFERENCE_MAX_NEW_TOKENS

DEFAULT_ANSWER_TOKENS = REFERENCE_MAX_NEW_TOKENS
"""The reference generation's limit (400 new tokens): the default global answer cap."""
ANSWER_TOKENS_MAX = 32768
"""Most answer tokens any request may ask for: the largest trained context of any Asclepius variant's base
(Mistral's 32768); a larger request could never fit a context."""
SEED_MAX = 2**32 - 2
"""llama.cpp takes a 32-bit seed and reads 0xFFFFFFFF (LLAMA_DEFAULT_SEED) as "pick one at random", which
would make the recorded seed a lie; so 0..2^32-2."""
SEED_MAX_WIDGET = 2**31 - 1
"""Qt spin boxes hold a signed 32-bit int; the Settings screen offers 0..2^31-1 of the seed range."""
TEMPERATURE_MAX = 5.0
PARALLEL_MAX = 64
"""Most answers about one note decoded together (``--parallel``, ``engine.parallel``): each is a sequence
of the llama.cpp context; past 64 the per-sequence bookkeeping outweighs any gain on a workstation."""
CONTEXT_MIN = 256
"""Smallest context (``engine.n_ctx``, ``engine.max_ctx``): the templates and a short note need about this."""
CONTEXT_MAX = 131072
"""Largest context any setting may ask for: 128k, the longest trained context of the LLaMA-family models
llama.cpp runs (Llama 3.1). The KV cache is allocated up front, ~64 GiB at 128k for a 7B LLaMA at F16, so a
larger value is a typo, and 4294967808 raised MemoryError allocating 16 GiB before any message (issue 21)."""
BATCH_MAX = 8192
"""Most prompt tokens per ``llama_decode`` call (``engine.n_batch``): the compute buffer grows with it, and a
cancel waits for the batch in flight."""
KV_CACHE_MB_MAX = 65536
"""Largest memory budget for note KV states (``engine.kv_cache_mb``, 64 GiB): it is RAM on top of the model."""
KV_DISK_MB_MAX = 1048576
"""Largest disk budget for note KV states kept across restarts (``engine.kv_disk_mb``, 1 TiB)."""

# -- quantize verify and train plan (quantize/cli.py, training/trainer/cli.py) ------------------------------
VERIFY_WINDOW_MAX = 4096
"""Most tokens ``quantize verify`` evaluates in one window (``--ctx``, ``--max-tokens``): every position's
logits are kept, n_ctx x vocabulary float32 in llama.cpp plus a float64 copy for the log-softmax, 6.3 GB at
4,096 tokens of Llama-3's 128,256-token vocabulary. The published perplexity figures use 512."""
PPL_TOKENS_MIN = 16
"""Fewest tokens a perplexity window (``verify --ctx``) or the whole measurement (``--ppl-tokens``) may
have: a window's first token is never scored, and under 16 scored tokens the figure is noise, not a gate."""
PPL_TOKENS_MAX = 1_000_000
"""Most held-out tokens ``verify --ppl-tokens`` scores per file: three times wikitext-2's test set, the
basis of the published figures; more adds hours per file on a CPU and no precision the gate uses."""
VERIFY_PROMPTS_MAX = 100
"""Most prompts for the logits check (``verify --prompts``): each runs the HF model and llama.cpp over the
prompt and 32 greedy steps on both sides, minutes per prompt for a 7B model on a CPU."""
TRAIN_GPUS_MAX = 65536
"""Most GPUs ``train plan --gpus`` plans for: a bound that refuses typos (the estimate holds for any
count, but no run this project targets comes near it)."""
GPU_MEM_GB_MIN = 1.0
"""Least memory per GPU ``train plan --gpu-mem`` accepts, in GB: no accelerator that trains a 7B model has
less (the static terms alone are several GB)."""
GPU_MEM_GB_MAX = 1024.0
"""Most memory per GPU ``train plan --gpu-mem`` accepts, in GB: above every accelerator made (the largest
hold under 300 GB). The value must be finite too: ``nan`` once printed "does NOT fit in nan GB"."""
TRAIN_STEPS_MAX = 10_000_000
"""Most optimizer steps ``train pretrain|sft --max-steps`` takes: a bound that refuses typos (the
Asclepius recipes run a few thousand steps)."""
MODEL_HPARAM_MAX = 2**31 - 1
"""Largest integer hyperparameter a ``config.json`` may give (layers, widths, heads, vocabulary, context):
llama.cpp holds them in 32-bit fields, and a GGUF cannot record more."""


def max_threads() -> int:
    """The most CPU threads any setting or flag may ask for.

    llama.cpp allocates per-thread state up front: 100,000 threads aborted with std::bad_alloc and 8,192
    hung (issue 9). Four per logical CPU is already far past the point of any speed-up; 512 caps big hosts.
    """
    return max(4, min(512, 4 * (os.cpu_count() or 1)))


def check_parallel(value: int | None, what: str = "--parallel") -> str | None:
    """The problem with a ``parallel`` value (None = not given), or None when it is in 1..PARALLEL_MAX."""
    if value is None or 1 <= value <= PARALLEL_MAX:
        return None
    return f"{what} must be 1..{PARALLEL_MAX}, not {value}"
