"""Synthetic data over an OpenAI-compatible endpoint: notes, instructions, answers, and the built dataset."""
