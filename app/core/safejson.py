"""``json.loads`` for text this app did not write itself, with every way it can fail as one ``ValueError``.

``json.loads`` raises more than ``JSONDecodeError``: a plain ``ValueError`` for an integer over Python's
4,300-digit limit and ``RecursionError`` for arrays or objects nested deeper than its parser goes. A caller's
``except ValueError`` misses the second, and a traceback (exit 1) follows (issue 21). Every reader of JSON
from outside (JSON Lines rows, the config, the model registry, a checkpoint's small files) goes through here.
"""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """The parsed value; a ``ValueError`` whose text says what is wrong (``not valid JSON (...)``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg})") from None
    except RecursionError:
        raise ValueError(
            "not valid JSON here (nested too deeply: arrays or objects nested over about 1,000 levels)"
        ) from None
    except ValueError as e:
        why = "a number over 4,300 digits" if "digits" in str(e) else str(e)
        raise ValueError(f"not valid JSON ({why})") from None
