"""Qt-free core: tasks & prompts, inference engine, context budget, grounding, model registry, config.

Never imports PySide6, torch or transformers (tests/unit/test_layering.py checks this).
"""
