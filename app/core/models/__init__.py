"""Models: the GGUF files the app knows, the embedded demo model, and the model manager's operations.

The public API is what ``__all__`` names; front ends (``app.cli``, ``app.qt``), the service and the tests import
from here. The modules, from the bottom up:

- ``files``: a file's fingerprint (size, mtime, quick hash), the llama.cpp load check, the prepare lock.
- ``entries``: the ``models.json`` format (version 2, one entry per path), migration, an entry's file status.
- ``header``: a GGUF header read and checked into the metadata an entry is built from.
- ``demo``: the embedded demo model, joined from its package's parts on first use under a lock.
- ``registry``: ``Registry``: entries, lookup by reference, and ``resolve``, the one place that decides which
  model a run gets (the demo fallback for a default that is unset, missing or no longer registered).
- ``library``: import (optionally copying into the app's library), remove, rename, the default setting.
- ``labels``: how a model is shown (the "verified" column, a model as plain data).

The one file hash is ``app.core.hashing.sha256_file`` (outside this package, so that ``installer/`` can import
it without the app's dependencies).
"""

from app.core.models.demo import DEMO_LABEL, DEMO_NAME, join_demo_parts
from app.core.models.entries import (
    CHANGED,
    MISSING,
    OK,
    REGISTRY_VERSION,
    check_name,
    entry_key,
    parse_registry,
    printable,
)
from app.core.models.header import SUPPORTED_ARCHITECTURES, read_gguf
from app.core.models.labels import describe, human_size, verified_label
from app.core.models.library import (
    add_model,
    copy_into_library,
    default_setting,
    is_default,
    is_removable,
    removable_device,
    remove_model,
    rename_model,
)
from app.core.models.registry import Registry, check_style, mark_missing

__all__ = [
    "CHANGED",
    "DEMO_LABEL",
    "DEMO_NAME",
    "MISSING",
    "OK",
    "REGISTRY_VERSION",
    "SUPPORTED_ARCHITECTURES",
    "Registry",
    "add_model",
    "check_name",
    "check_style",
    "copy_into_library",
    "default_setting",
    "describe",
    "entry_key",
    "human_size",
    "is_default",
    "is_removable",
    "join_demo_parts",
    "mark_missing",
    "parse_registry",
    "printable",
    "read_gguf",
    "removable_device",
    "remove_model",
    "rename_model",
    "verified_label",
]
