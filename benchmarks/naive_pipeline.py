"""The naive baseline: a Beam pipeline that decodes every image at full size, resizes it
with PIL, and calls the model once per element (no draft decoding, no batching)."""

from __future__ import annotations

import json

import apache_beam as beam
import torch

from benchmarks.common import decode_full
from model.preprocessing import to_tensor
from model.registry import load_checkpoint


class NaiveScoreFn(beam.DoFn):
    def __init__(self, model_path: str):
        self.model_path = model_path

    def setup(self):
        torch.set_num_threads(1)
        self.model, meta = load_checkpoint(self.model_path, expect="student")
        self.threshold = float(meta.get("threshold", 0.5))

    def process(self, uri: str):
        with open(uri, "rb") as f:
            image = decode_full(f.read())
        with torch.no_grad():
            score = float(torch.sigmoid(self.model(to_tensor(image)).logits).max())
        yield json.dumps({"uri": uri, "score": score, "text": score >= self.threshold})


def run_naive(uris: list[str], output: str, model_path: str, beam_args: list[str]) -> None:
    with beam.Pipeline(argv=beam_args) as p:
        (
            p
            | beam.Create(uris)
            | beam.Reshuffle()
            | beam.ParDo(NaiveScoreFn(model_path))
            | beam.io.WriteToText(output, file_name_suffix=".jsonl")
        )
