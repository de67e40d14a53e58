"""``python -m training.trainer pretrain|sft|plan ...``: the entry point for ``accelerate launch`` and ``torchrun``."""

import os
import sys

from training.trainer.cli import main

code = main()
loop = sys.modules.get("training.trainer.loop")  # imported only by a training run
if loop is not None and loop.KEEP_UNTIL_EXIT:
    # A finished multi-process run: every output is written and closed; leave without running the gloo process
    # group's destructor, which can hang joining its threads once the peer rank has exited (training/trainer/loop.py).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
sys.exit(code)
