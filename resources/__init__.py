"""Ground-floor data every package imports: prompt styles, task presets, the rubric, sample notes.

Everything here is plain Python data or package files read through ``importlib.resources`` so that it
keeps working inside a frozen bundle.
"""

from resources.prompts import PROMPT_STYLES, PromptStyle, Segment, get_style
from resources.rubric import RUBRIC, RubricLevel
from resources.samples import SampleNote, list_samples, load_sample
from resources.tasks import PRESETS_VERSION, TASK_NAMES, TASKS, TaskPreset, get_task

__all__ = [
    "PRESETS_VERSION",
    "PROMPT_STYLES",
    "RUBRIC",
    "TASKS",
    "TASK_NAMES",
    "PromptStyle",
    "RubricLevel",
    "SampleNote",
    "Segment",
    "TaskPreset",
    "get_style",
    "get_task",
    "list_samples",
    "load_sample",
]
