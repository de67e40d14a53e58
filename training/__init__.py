"""Model building for the Asclepius models: synthetic data, corpus preparation, domain pretraining,
instruction fine-tuning (accelerate / torchrun / FSDP) and LLM-judge evaluation. Needs the ``train`` extra;
nothing under ``app/`` imports this package at module level."""
