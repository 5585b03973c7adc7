"""Models of the text/non-text filter: the student, the teacher and what they share."""

from model.registry import build_model, load_checkpoint, save_checkpoint  # noqa: F401
