"""The LLM judge: the reference pointwise prompt over runs in the evaluation log or a JSONL of answers."""
