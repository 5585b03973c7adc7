"""Helpers for pipeline tests: run the real pipeline and read its outputs back."""

from __future__ import annotations

import glob
import io
import json
import os
import tarfile

from pipeline.records import ROUTES


def read_outputs(out_dir: str) -> dict[str, list[dict]]:
    outputs = {}
    for route in ROUTES:
        records = []
        for shard in sorted(glob.glob(os.path.join(out_dir, f"{route}-*-of-*.jsonl"))):
            with open(shard, encoding="utf-8") as f:
                records += [json.loads(line) for line in f if line.strip()]
        outputs[route] = records
    return outputs


def assert_conserved(outputs: dict[str, list[dict]], inputs) -> None:
    """Every input URI is in exactly one output."""
    seen = [r["uri"] for route in ROUTES for r in outputs[route]]
    assert len(seen) == len(set(seen)), "a URI was written twice"
    assert sorted(seen) == sorted(inputs)


def make_shard(path, samples: dict[str, bytes]) -> None:
    """A WebDataset-style tar shard at ``path`` holding ``samples`` (member name -> bytes)."""
    with tarfile.open(path, "w") as tar:
        for name, data in samples.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
