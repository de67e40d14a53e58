"""The tiny LLaMA GGUF fixture (built with the quantize extra) for the qemu portability tests."""

from tests.fixtures_llama import tiny_llama_gguf  # noqa: F401
