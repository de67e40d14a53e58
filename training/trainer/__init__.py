"""Domain pretraining and instruction fine-tuning on transformers + accelerate (FSDP or DeepSpeed ZeRO-3).

``recipe``  typed, validated recipes loaded from ``training/recipes/*.yaml``
``data``    pretraining token files (memory-mapped) and SFT examples (masking, packing)
``loop``    the training loop (accelerate), resumable from its own checkpoints
``output``  the merged HF checkpoint and its manifest
``plan``    per-GPU memory estimate before a cluster is booked
``cli``     ``asclepius train ...`` and ``python -m training.trainer ...`` (the torchrun / accelerate entry point)
"""

MANIFEST_NAME = "asclepius-train-manifest.json"
"""Written beside the merged checkpoint; ``quantize convert`` reads ``prompt_style`` from it."""
