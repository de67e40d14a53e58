"""Rebuilding the Asclepius models: synthetic data, training and the LLM judge (needs the ``train`` extra)."""
