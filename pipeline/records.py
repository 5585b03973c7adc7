"""The records the pipeline writes. Every input URI ends in exactly one of them."""

from __future__ import annotations

from typing import Optional

import numpy as np

from model.regions import DEFAULT_SCORE_RULE, image_score, split_grids
from pipeline.uris import printable, redact_text, redact_uri

TEXT = "text"
NON_TEXT = "non_text"
FAILED = "failed"
ROUTES = (TEXT, NON_TEXT, FAILED)

# Stages at which an input can fail.
STAGE_READ = "read"
STAGE_DECODE = "decode"
STAGE_INFERENCE = "inference"
STAGE_OCR_SINK = "ocr_sink"
STAGE_OCR = "ocr"

# The fields the pipeline writes; any other field of a record came from its source (a
# manifest row, a WebDataset sample's sidecar: ``pipeline.source_fields``).
PIPELINE_FIELDS = frozenset({
    "uri", "label", "score", "threshold", "regions_5x5", "regions_3x3", "stage", "error_type", "error",
    "ocr", "ocr_inbox_uri",
})


def decided_record(uri: str, region_probs: np.ndarray, threshold: float, score_rule: str = DEFAULT_SCORE_RULE) -> dict:
    """A text or non-text decision on the image score (``model.regions.image_score``; by
    default the max region probability, the paper's logical OR). The label is decided on
    the score as written, so every record satisfies its own ``label == "text"`` iff
    ``score >= threshold``."""
    score = round(float(image_score(np.asarray(region_probs), score_rule)), 6)
    grids = split_grids(region_probs)
    return {
        "uri": uri,
        "label": TEXT if score >= threshold else NON_TEXT,
        "score": score,
        "threshold": threshold,
        "regions_5x5": grids["5x5"],
        "regions_3x3": grids["3x3"],
    }


def failed_record(uri: str, stage: str, error: BaseException | str, error_type: Optional[str] = None) -> dict:
    """A dead letter: the URI (secrets redacted), the stage and a readable reason (bytes of
    a file name that are not UTF-8 as backslash escapes: a record is always valid JSON)."""
    if isinstance(error, BaseException):
        error_type = error_type or type(error).__name__
        error = str(error) or error_type
    first_line = (str(error).strip().splitlines() or [""])[0][:500]
    return {
        "uri": printable(redact_uri(uri)),
        "label": FAILED,
        "stage": stage,
        "error_type": error_type or "Error",
        "error": printable(redact_text(first_line, uri)),
    }


def with_source(record: dict, fields: Optional[dict]) -> dict:
    """``record`` with the fields that lead back to its source (``url``, ``key``, the
    ``--keep_fields``); in a failed record the ``url``'s secrets are redacted, like its URI."""
    if not fields:
        return record
    if record["label"] == FAILED and isinstance(fields.get("url"), str):
        fields = {**fields, "url": printable(redact_uri(fields["url"]))}
    return {**fields, **record}


def source_of(record: dict) -> dict:
    """The fields of ``record`` that came from its source (``with_source``)."""
    return {k: v for k, v in record.items() if k not in PIPELINE_FIELDS}
