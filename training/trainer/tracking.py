"""Where a run's figures go: ``logs/train.jsonl`` always, TensorBoard and MLflow as the recipe's ``logging``
names them. Only the main process writes; nothing goes to a cloud service unless ``MLFLOW_TRACKING_URI``
points MLflow at one.

TensorBoard (``torch.utils.tensorboard.SummaryWriter``, the ``tensorboard`` package of the train extra) gets
every numeric field of a record as a scalar under ``train/`` (loss: the logging window's mean, lr, grad
norm, tokens/s, peak memory) or ``eval/`` (held-out loss and perplexity), plus the recipe and the data
manifest as text. MLflow is imported only when a recipe asks for it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

INSTALL = {
    "tensorboard": "pip install tensorboard (the train extra installs it: pip install 'asclepius-desk[train]')",
    "mlflow": "pip install mlflow",
}
"""What to install for each tracker a recipe may name."""
MLFLOW_RUN_FILE = "mlflow-run-id"
"""Beside train.jsonl: the MLflow run a resumed run continues."""


def check_trackers(trackers: tuple[str, ...] | list[str]) -> None:
    """A ValueError (exit 2) before any work when a tracker the recipe names is not installed."""
    missing = [t for t in trackers if importlib.util.find_spec(t) is None]
    if missing:
        how = "; ".join(f"{t}: {INSTALL[t]}" for t in missing)
        raise ValueError(
            f"the recipe logs to {', '.join(missing)}, which is not installed ({how}); or leave it out of the "
            "recipe's logging list (--set 'logging=[]')"
        )


def _prefixed(record: dict[str, Any]) -> dict[str, float]:
    """Numeric fields as tracker tags: ``eval_loss`` -> ``eval/loss``, ``loss`` -> ``train/loss``."""
    out = {}
    for k, v in record.items():
        if k == "step" or isinstance(v, bool) or not isinstance(v, int | float):
            continue
        out[f"eval/{k[5:]}" if k.startswith("eval_") else f"train/{k}"] = float(v)
    return out


class Logger:
    """stdout + ``logs/train.jsonl`` + the recipe's trackers; main process only.

    A run continues the log of the step it starts from: records after ``start_step`` (written by a run killed
    after its last checkpoint, or by an earlier run a ``--no-resume`` replaces) are dropped, so no step is
    logged twice; TensorBoard hides an earlier writer's events from that step on (``purge_step``)."""

    def __init__(self, log_dir: Path, enabled: bool, start_step: int = 0, trackers: tuple[str, ...] = ()):
        self.enabled = enabled
        self.path = log_dir / "train.jsonl"
        self.log_dir = log_dir
        self.tb: Any = None
        self.mlflow: Any = None
        if not enabled:
            return
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._keep_until(start_step)
        if "tensorboard" in trackers:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(log_dir / "tensorboard"), purge_step=start_step + 1)
        if "mlflow" in trackers:
            self.mlflow = _start_mlflow(log_dir)

    def _keep_until(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line + "\n")
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill
        tmp = self.path.with_suffix(".partial")
        tmp.write_text("".join(kept), encoding="utf-8")
        tmp.replace(self.path)

    def record_config(self, recipe: dict[str, Any], data: dict[str, Any]) -> None:
        """The run's recipe and data manifest, with the figures they produced."""
        if not self.enabled:
            return
        if self.tb is not None:
            self.tb.add_text("recipe", "```\n" + json.dumps(recipe, indent=2) + "\n```", 0)
            self.tb.add_text("data", "```\n" + json.dumps(data, indent=2, default=str) + "\n```", 0)
            self.tb.flush()
        if self.mlflow is not None:
            self.mlflow.log_params({k: json.dumps(v)[:500] for k, v in _flat(recipe).items()})
            self.mlflow.log_dict(recipe, "recipe.json")
            self.mlflow.log_dict(json.loads(json.dumps(data, default=str)), "data-manifest.json")

    def log(self, record: dict[str, Any], echo: Any = print) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        echo(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        scalars = _prefixed(record)
        if self.tb is not None:
            for tag, v in scalars.items():
                self.tb.add_scalar(tag, v, record["step"])
            self.tb.flush()
        if self.mlflow is not None:
            self.mlflow.log_metrics({k.replace("/", "_"): v for k, v in scalars.items()}, step=record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.mlflow is not None:
            self.mlflow.end_run()


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _start_mlflow(log_dir: Path) -> Any:
    """An active MLflow run: the one this output directory started before (resume), else a new one. The
    tracking URI is MLflow's own setting (``MLFLOW_TRACKING_URI``), else a file store beside the logs."""
    import os

    import mlflow  # lazy: an optional tracker, checked by check_trackers before the run starts

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri((log_dir / "mlruns").resolve().as_uri())
    id_file = log_dir / MLFLOW_RUN_FILE
    run_id = id_file.read_text().strip() if id_file.exists() else None
    run = mlflow.start_run(run_id=run_id, run_name=None if run_id else log_dir.parent.name)
    id_file.write_text(run.info.run_id)
    return mlflow
