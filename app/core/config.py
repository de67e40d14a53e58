"""Typed, versioned configuration and the user's private directories.

The config is a JSON file under the platform's user config directory. Every file and directory the app
creates is readable by the user alone (0600 / 0700): notes are patient data.
"""

from __future__ import annotations

import json
import math
import os
import sys
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from app.core import safejson
from app.core.bounds import (
    ANSWER_TOKENS_MAX,
    BATCH_MAX,
    CONTEXT_MAX,
    CONTEXT_MIN,
    DEFAULT_ANSWER_TOKENS,
    KV_CACHE_MB_MAX,
    KV_DISK_MB_MAX,
    SEED_MAX,
    TEMPERATURE_MAX,
    check_parallel,
    max_threads,
)
from app.core.errors import PolicyError
from app.core.policy import USER_POLICY_NAME, EffectivePolicy, load_policy
from app.core.privatefile import write_private

CONFIG_VERSION = 1
APP_NAME = "asclepius-desk"


def default_threads() -> int:
    # llama.cpp decodes fastest with one thread per physical core; leave nothing idle on small machines.
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class EngineConfig:
    n_threads: int = field(default_factory=default_threads)
    """CPU threads for prompt processing and decoding."""
    n_ctx: int = 0
    """Context window to allocate; 0 uses the model's trained context (capped by ``max_ctx``); else
    ``CONTEXT_MIN..CONTEXT_MAX`` (``app.core.bounds``)."""
    max_ctx: int = 8192
    """Upper bound when ``n_ctx`` is 0, so a 32k-context model does not take all RAM for its KV cache
    (``CONTEXT_MIN..CONTEXT_MAX``)."""
    n_batch: int = 512
    """Prompt tokens per llama_decode call (1..``BATCH_MAX``); also bounds how long a cancel waits."""
    kv_cache_mb: int = 1024
    """Memory budget of the LRU cache of note KV states (0 disables it; at most ``KV_CACHE_MB_MAX``). A
    1,500-token note costs ~27 MB on the demo model and ~790 MB on a 7B LLaMA (F16 KV), so 1 GB keeps one 7B
    note or dozens of demo ones."""
    kv_disk_mb: int = 2048
    """Disk budget of note KV states kept across restarts (0 disables it, at most ``KV_DISK_MB_MAX``; never
    used with hash-only storage)."""
    parallel: int = 8
    """Most answers about one note decoded together (sequences in the context besides the note prefix)."""
    lookup: bool = False
    """Prompt-lookup decoding of greedy answers (``app/core/lookup.py``): tokens copied from the note are
    drafted and verified several per decode (sampled answers always decode one token at a time). Off by
    default: llama.cpp's CPU kernels give some batch rows other logits than single decodes, so a near-tied
    greedy token can flip (3 of 16 answers in bench_lookup.py's run of 2026-12-07), and answers must stay
    reproducible."""

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.n_threads <= max_threads():
            problems.append(f"n_threads must be 1..{max_threads()} on this machine, not {self.n_threads}")
        if self.n_ctx != 0 and not CONTEXT_MIN <= self.n_ctx <= CONTEXT_MAX:
            problems.append(f"n_ctx must be 0 (the model's context) or {CONTEXT_MIN}..{CONTEXT_MAX}, not {self.n_ctx}")
        if not CONTEXT_MIN <= self.max_ctx <= CONTEXT_MAX:
            problems.append(f"max_ctx must be {CONTEXT_MIN}..{CONTEXT_MAX}, not {self.max_ctx}")
        if not 1 <= self.n_batch <= BATCH_MAX:
            problems.append(f"n_batch must be 1..{BATCH_MAX}, not {self.n_batch}")
        if problem := check_parallel(self.parallel, "parallel"):
            problems.append(problem)
        if not 0 <= self.kv_disk_mb <= KV_DISK_MB_MAX:
            problems.append(f"kv_disk_mb must be 0..{KV_DISK_MB_MAX}, not {self.kv_disk_mb}")
        if not 0 <= self.kv_cache_mb <= KV_CACHE_MB_MAX:
            problems.append(f"kv_cache_mb must be 0..{KV_CACHE_MB_MAX}, not {self.kv_cache_mb}")
        if problems:
            raise ValueError("; ".join(problems))

    def default_context(self, context_length: int) -> int:
        """The context allocated when ``n_ctx`` is 0: the model's (GGUF) context capped by ``max_ctx``."""
        return min(context_length, self.max_ctx)

    def context_for(self, context_length: int) -> int:
        """The context the engine allocates for a model whose GGUF says ``context_length``: the one rule
        (``LlamaCppEngine``, the Settings screen, ``models show`` and the RAM estimate all ask here)."""
        return self.n_ctx or self.default_context(context_length)


@dataclass(frozen=True)
class GenerationDefaults:
    max_tokens: int = DEFAULT_ANSWER_TOKENS
    """Reference generation: up to 400 new tokens (a task preset may ask for fewer)."""
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.max_tokens <= ANSWER_TOKENS_MAX:
            problems.append(f"max_tokens must be 1..{ANSWER_TOKENS_MAX}, not {self.max_tokens}")
        if not (math.isfinite(self.temperature) and 0.0 <= self.temperature <= TEMPERATURE_MAX):
            problems.append(f"temperature must be a number from 0 to {TEMPERATURE_MAX:g}, not {self.temperature}")
        if not 0 <= self.seed <= SEED_MAX:
            problems.append(f"seed must be 0..{SEED_MAX}, not {self.seed}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Paths:
    data_dir: Path
    """Models, the model registry and the evaluation log live here."""
    config_dir: Path
    shared_models_dir: Path | None = None
    """Read-only models an installed program ships for every user (the demo GGUF, used in place rather than
    joined into each user's ``models_dir``); None when the program ships none (a source checkout)."""

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def registry_file(self) -> Path:
        return self.data_dir / "models.json"

    @property
    def database(self) -> Path:
        return self.data_dir / "asclepius.db"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.json"

    @property
    def policy_file(self) -> Path:
        """The user's own policy file (``app.core.policy``), read where the machine policy allows it."""
        return self.config_dir / USER_POLICY_NAME

    @classmethod
    def default(cls) -> Paths:
        # ASCLEPIUS_HOME puts everything under one directory (tests, portable installs).
        home = os.environ.get("ASCLEPIUS_HOME")
        shared = installed_models_dir()
        if home:
            return cls(Path(home) / "data", Path(home) / "config", shared)
        return cls(
            Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            shared,
        )


def installed_models_dir() -> Path | None:
    """``share/models`` beside the frozen program (installer/package.py puts the joined demo GGUF there, so a
    system-wide install holds one copy for all users); None when not frozen or when the release has none."""
    if not getattr(sys, "frozen", False):
        return None
    shared = Path(sys.executable).resolve().parent / "share" / "models"
    return shared if shared.is_dir() else None


@dataclass(frozen=True)
class AppConfig:
    version: int = CONFIG_VERSION
    engine: EngineConfig = field(default_factory=EngineConfig)
    generation: GenerationDefaults = field(default_factory=GenerationDefaults)
    database: str = ""
    """Evaluation-log location; empty means ``<data_dir>/asclepius.db``."""
    store_note_text: bool = True
    """False keeps only each note's sha256 and length in the log."""
    default_model: str = ""
    """sha256 of the default model in the registry; empty means the embedded demo model."""
    font_size: int = 11
    rater: str = ""
    """Who rates on this workstation: a name from the log's rater list (``raters``), chosen in Settings or
    the Rate panel; empty: nobody is chosen, and the app refuses to rate. A name, never note text."""
    abbreviation_senses: str = ""
    """Folder of abbreviation sense inventories (TSV/CSV, e.g. the CARD and Vanderbilt inventories the
    user has) that grounding checks expansions against; empty: expansions are aligned to the note but
    their senses are not checked (the report says so). The project ships no inventory (licences)."""
    preread_note: bool = True
    """Read the note while the user types: once the note has been still for a moment, the Ask screen has the
    engine evaluate it in the background, so the answer starts sooner (the answer itself is unchanged).
    Off: the note is read when Ask is pressed. A switch only: no note text is stored for it."""
    policy: EffectivePolicy = field(default_factory=EffectivePolicy, compare=False, repr=False)
    """The policy this config was loaded under (never saved): which settings it fixes, and who set them."""

    def with_engine(self, **changes: Any) -> AppConfig:
        return replace(self, engine=replace(self.engine, **changes))


def _type_problem(key: str, value: Any, expected: Any) -> str | None:
    """None if ``value`` has the declared type; JSON has no int/bool distinction we may blur, so none is."""
    kind = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(expected)
    if kind is None:
        return None
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, str)
    return None if ok else f"{key} must be {kind}, not {json.dumps(value)[:40]}"


def _from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build ``cls`` from a JSON object, checking every key's type first (a string "no" is not False)."""
    if not isinstance(data, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'the top level'} must be an object, not {json.dumps(data)[:40]}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    problems = [f"unknown setting {prefix}{k}" for k in sorted(unknown)]
    hints = typing.get_type_hints(cls)
    for k in sorted(set(data) & known):
        problem = _type_problem(prefix + k, data[k], hints[k])
        if problem:
            problems.append(problem)
    if problems:
        raise ValueError("; ".join(problems))
    try:
        return cls(**data)
    except ValueError as exc:
        raise ValueError(f"{prefix.rstrip('.') or 'settings'}: {exc}") from None


def read_config(paths: Paths) -> AppConfig:
    """The user's own settings (``config.json``, no policy); a missing file gives the defaults, a broken one a
    clear ValueError."""
    f = paths.config_file
    if not f.exists():
        return AppConfig()
    try:
        raw = safejson.loads(f.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("top level is not an object")
        version = raw.get("version", CONFIG_VERSION)
        if problem := _type_problem("version", version, int):
            raise ValueError(problem)
        if version > CONFIG_VERSION:
            raise ValueError(f"written by a newer version (config version {version})")
        if "policy" in raw:  # the policy lives in its own files, never in the user's config
            raise ValueError("unknown setting policy")
        engine = _from_dict(EngineConfig, raw.pop("engine", {}), "engine.")
        gen = _from_dict(GenerationDefaults, raw.pop("generation", {}), "generation.")
        raw["version"] = CONFIG_VERSION
        return _from_dict(AppConfig, {**raw, "engine": engine, "generation": gen})
    except UnicodeDecodeError:
        raise ValueError(f"config file {f} is invalid: not UTF-8 text") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"config file {f} is invalid: {exc}") from None
    except OSError as exc:
        raise ValueError(f"config file {f} cannot be read: {exc.strerror or exc}") from None


def load_config(paths: Paths, policy: EffectivePolicy | None = None) -> AppConfig:
    """The settings in force: the user's own (ValueError if ``config.json`` is broken) under the policy
    (``policy``, or the machine and user policy files read now: PolicyError if one is broken)."""
    return apply_policy(read_config(paths), load_policy(paths.policy_file) if policy is None else policy)


def default_config(paths: Paths) -> AppConfig:
    """The defaults under the policy: what the desktop runs on while ``config.json`` is broken (the policy
    still holds: a broken user file must not lift it)."""
    return apply_policy(AppConfig(), load_policy(paths.policy_file))


def apply_policy(own: AppConfig, policy: EffectivePolicy) -> AppConfig:
    """``own`` with every value a policy file sets put over it: the one place the policy reaches the settings,
    so every command and the desktop obey it. The endpoint keys are checked where a command connects
    (``EffectivePolicy.check_endpoint``)."""
    p = policy.policy
    config = replace(own, policy=policy)
    if policy.sets("log_path"):
        config = replace(config, database=p.log_path or "")
    if policy.sets("store_note_text") and p.store_note_text is not None:
        config = replace(config, store_note_text=p.store_note_text)
    if not p.note_state_cache:
        config = config.with_engine(kv_disk_mb=0)  # no disk budget: kvstate.state_dir is None
    return config


def _own_values(config: AppConfig, own: AppConfig) -> AppConfig:
    """``config`` with the user's own value (from ``own``) of each setting the policy fixes: what is saved."""
    policy = config.policy
    if policy.sets("log_path"):
        config = replace(config, database=own.database)
    if policy.sets("store_note_text"):
        config = replace(config, store_note_text=own.store_note_text)
    if not policy.policy.note_state_cache:
        config = config.with_engine(kv_disk_mb=own.engine.kv_disk_mb)
    return replace(config, policy=EffectivePolicy())


def save_config(paths: Paths, config: AppConfig) -> None:
    """Write the user's settings; a value the policy fixes is the policy's, so the user's own is kept on disk
    (lifting the policy gives them back their choice)."""
    if config.policy.in_force:
        try:
            own = read_config(paths)
        except ValueError:  # a broken file is replaced, as before: keep the defaults for the fixed values
            own = AppConfig()
        config = _own_values(config, own)
    data = asdict(replace(config, policy=EffectivePolicy()))
    del data["policy"]
    write_private(paths.config_file, json.dumps(data, indent=2, default=str) + "\n")


def database_path(paths: Paths, config: AppConfig, requested: str | Path | None = None) -> Path:
    """The evaluation log: ``requested`` (a command's ``--db``), else the setting, else the default. A location
    the policy fixes (``log_path``) refuses any other (PolicyError), so every user's log lands where IT says."""
    fixed = config.policy.sets("log_path")
    setting = Path(config.database).expanduser() if config.database else paths.database
    if requested is None or str(requested) == "":
        return setting
    asked = Path(requested).expanduser().absolute()
    if fixed and asked != setting:
        raise PolicyError(
            f"the evaluation log is fixed at {setting} by log_path in {config.policy.set_by('log_path')}; "
            f"--db {asked} is refused"
        )
    return asked
