"""PyInstaller hook: llama-cpp-python loads ``llama_cpp/lib/libllama.so`` by path (ctypes), so the freezer's
import analysis misses it; a portable build also loads ``libggml-cpu-<level>.so`` by directory scan. Every
shared library of ``llama_cpp/lib`` goes to the same relative place in the bundle."""

from PyInstaller.utils.hooks import collect_dynamic_libs

binaries = collect_dynamic_libs("llama_cpp", destdir="llama_cpp/lib")
# The multimodal helpers are imported lazily by chat handlers the app does not use, and the portable
# build has no libmtmd: keep the analysis from pulling them in.
excludedimports = ["llama_cpp.server"]
