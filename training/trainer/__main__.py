"""``python -m training.trainer pretrain|sft|plan ...``: the entry point for ``accelerate launch`` and ``torchrun``."""

import sys

from training.trainer.cli import main

sys.exit(main())
