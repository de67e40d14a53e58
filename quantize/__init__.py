"""HF checkpoint -> GGUF conversion, llama.cpp quantization, verification and inspection.

Nothing here imports torch or transformers at module level: the CLI must be able to say plainly that the
``quantize`` extra is missing. Modules that need them import them inside functions.
"""

from __future__ import annotations

CONVERTER_VERSION = "asclepius-quantize 0.1.0"
"""Written into every GGUF as ``asclepius.converter``; bump when the output of a conversion changes."""
