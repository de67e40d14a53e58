"""Asclepius Desk: offline clinical-note assistant (desktop app, CLI, evaluation log)."""

__version__ = "0.1.0"
