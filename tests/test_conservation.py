"""Conservation, property-tested: for any mix of valid and broken inputs,
count(inputs) = count(text) + count(non_text) + count(failed), and no URI twice.

Most examples call the pipeline's DoFns directly (read + decode, the real student through
``StudentModelHandler.run_inference``, routing); a few run the whole pipeline.
Examples: 600 + 1100 + 300 + 3 = 2003.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile

import numpy as np
import pytest
from apache_beam.ml.inference.base import PredictionResult
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.regions import NUM_REGIONS
from pipeline.handler import StudentModelHandler
from pipeline.io import ReadConfig
from pipeline.records import FAILED, NON_TEXT, ROUTES, TEXT
from pipeline.run import run
from pipeline.transforms import ReadAndDecodeFn, RouteByScoreFn
from tests.data.make_bad_corpus import DECIDED, FILES, MAX_BYTES
from tests.faulty_fs import Fault
from tests.pipeline_helpers import assert_conserved, read_outputs

KINDS = sorted(FILES) + ["<directory>", "<missing>"]  # every regular-file kind of the corpus, and two more
EXPECTED = {**{k: outcome for k, (outcome, _) in FILES.items()}, "<directory>": FAILED, "<missing>": FAILED}
READ = ReadConfig(max_bytes=MAX_BYTES, retries=0)
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

kinds = st.lists(st.sampled_from(KINDS), max_size=6)
thresholds = st.floats(0.0, 1.0)


@functools.lru_cache(maxsize=None)
def content(kind: str) -> bytes:
    return FILES[kind][1]()


def write_inputs(folder: str, chosen: list[str]) -> list[str]:
    """The chosen kinds as files in ``folder`` (the same kind may come twice); their URIs."""
    uris = []
    for i, kind in enumerate(chosen):
        path = os.path.join(folder, f"{i:02d} {kind.strip('<>')}")
        if kind == "<directory>":
            os.mkdir(path)
        elif kind != "<missing>":
            with open(path, "wb") as f:
                f.write(content(kind))
        uris.append(path)
    return uris


def route(decided: list[tuple[str, PredictionResult]], threshold: float) -> dict[str, list[dict]]:
    """RouteByScoreFn over (uri, PredictionResult) pairs -> records per route."""
    out = {r: [] for r in ROUTES}
    fn = RouteByScoreFn(threshold)
    for pair in decided:
        for tagged in fn.process(pair):
            out[tagged.tag].append(tagged.value)
    return out


def assert_counts(outputs: dict[str, list[dict]], uris: list[str]) -> None:
    assert len(uris) == sum(len(outputs[r]) for r in ROUTES)
    assert_conserved(outputs, uris)


@pytest.fixture(scope="module")
def infer(student_checkpoint):
    """arrays -> PredictionResults of the real student, through the pipeline's handler.
    The corpus decodes to a few dozen distinct arrays, so each is run once and its result
    reused: the model's cost stays out of the example count."""
    handler = StudentModelHandler(student_checkpoint)
    model = handler.load_model()
    cache: dict[tuple, PredictionResult] = {}

    def key(array):
        return array.shape, hashlib.sha1(array.tobytes()).hexdigest()

    def run_batch(arrays):
        new = {key(a): a for a in arrays if key(a) not in cache}
        if new:
            cache.update(zip(new, handler.run_inference(list(new.values()), model)))
        return [cache[key(a)] for a in arrays]
    return run_batch


@given(chosen=kinds, threshold=thresholds)
@settings(max_examples=600, **FAST)
def test_read_decode_infer_route_conserves_every_uri(infer, chosen, threshold):
    with tempfile.TemporaryDirectory() as folder:
        uris = write_inputs(folder, chosen)
        decode = ReadAndDecodeFn(READ)
        failed, images = [], []
        for uri in uris:
            for out in decode.process(uri):
                if getattr(out, "tag", None) == FAILED:
                    failed.append(out.value)
                else:
                    images.append(out)
    results = infer([image for _, image in images])
    outputs = route([(uri, result) for (uri, _), result in zip(images, results)], threshold)
    outputs[FAILED] += failed
    assert_counts(outputs, uris)
    for uri, kind in zip(uris, chosen):
        routed = next(r for r in ROUTES for rec in outputs[r] if rec["uri"] == uri)
        assert (routed != FAILED) == (EXPECTED[kind] == DECIDED), (kind, routed)
    for record in outputs[TEXT] + outputs[NON_TEXT]:
        assert (record["label"] == TEXT) == (record["score"] >= threshold)
    assert all(r["stage"] in ("read", "decode") and r["error"] for r in outputs[FAILED])


probabilities = st.one_of(
    st.lists(st.floats(0.0, 1.0), min_size=NUM_REGIONS, max_size=NUM_REGIONS),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=NUM_REGIONS, max_size=NUM_REGIONS),
    st.lists(st.floats(0.0, 1.0), max_size=NUM_REGIONS + 3),  # a model with the wrong head
)


@given(results=st.lists(probabilities, max_size=12), threshold=thresholds)
@settings(max_examples=1100, **FAST)
def test_routing_puts_every_prediction_in_exactly_one_route(results, threshold):
    uris = [f"gs://bucket/img-{i}.jpg" for i in range(len(results))]
    pairs = [(uri, PredictionResult(None, np.asarray(p, dtype=np.float32))) for uri, p in zip(uris, results)]
    outputs = route(pairs, threshold)
    assert_counts(outputs, uris)
    for uri, p in zip(uris, results):
        usable = len(p) == NUM_REGIONS and all(0.0 <= x <= 1.0 for x in p)  # False for NaN
        assert (uri in {r["uri"] for r in outputs[FAILED]}) == (not usable)
    for record in outputs[TEXT] + outputs[NON_TEXT]:
        assert 0.0 <= record["score"] <= 1.0 and (record["label"] == TEXT) == (record["score"] >= threshold)


faults = st.builds(
    Fault,
    fail_first=st.integers(0, 5),
    error=st.sampled_from([ConnectionResetError, TimeoutError, OSError, PermissionError, FileNotFoundError]),
    cut_first=st.integers(0, 5),
    chunk=st.sampled_from([0, 1, 7, 4096]),
)


@given(plan=st.lists(faults, max_size=6), retries=st.integers(0, 4))
@settings(max_examples=300, **FAST)
def test_faulty_reads_end_decided_or_failed_never_lost(faulty_fs, plan, retries):
    faulty_fs.reset()  # one fixture for all examples: start each from nothing
    data = content("photo with spaces.jpg")
    uris = [faulty_fs.put(f"p{i}.jpg", data, fault) for i, fault in enumerate(plan)]
    decode = ReadAndDecodeFn(ReadConfig(retries=retries, backoff_s=0.0))
    outputs = {r: [] for r in ROUTES}
    for uri in uris:
        for out in decode.process(uri):
            if getattr(out, "tag", None) == FAILED:
                outputs[FAILED].append(out.value)
            else:
                outputs[NON_TEXT].append({"uri": out[0]})
    assert_counts(outputs, uris)
    for uri, fault in zip(uris, plan):
        permanent = fault.fail_first and fault.error in (PermissionError, FileNotFoundError)
        attempts_needed = max(fault.fail_first, fault.cut_first) + 1
        ok = not permanent and attempts_needed <= retries + 1
        assert (uri in {r["uri"] for r in outputs[NON_TEXT]}) == ok, (fault, retries)


@given(chosen=st.lists(st.sampled_from(KINDS), min_size=1, max_size=12))
@settings(max_examples=3, **FAST)
def test_whole_pipeline_conserves_every_uri(student_checkpoint, chosen):
    with tempfile.TemporaryDirectory() as folder:
        inputs = os.path.join(folder, "in")
        os.mkdir(inputs)
        uris = write_inputs(inputs, chosen)
        listing = os.path.join(folder, "uris.txt")
        with open(listing, "w", encoding="utf-8") as f:
            f.write("\n".join(uris) + "\n")
        out = os.path.join(folder, "out")
        summary = run(["--runner=FnApiRunner", "--input_list", listing, "--output", out,
                       "--model_path", student_checkpoint, "--max_bytes", str(MAX_BYTES)])
        outputs = read_outputs(out)
    assert_counts(outputs, uris)
    assert summary["images"] == len(uris)
    assert {r: summary[r] for r in ROUTES} == {r: len(outputs[r]) for r in ROUTES}
    expected_failed = sorted(u for u, k in zip(uris, chosen) if EXPECTED[k] != DECIDED)
    assert sorted(r["uri"] for r in outputs[FAILED]) == expected_failed


def test_inference_failures_are_failed_records_and_counted(mixed_folder, student_checkpoint, tmp_path, monkeypatch):
    def broken(self, batch, model, inference_args=None):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(StudentModelHandler, "run_inference", broken)
    out = str(tmp_path / "out")
    summary = run(["--runner=FnApiRunner", "--input", mixed_folder["dir"], "--output", out,
                   "--model_path", student_checkpoint])
    outputs = read_outputs(out)
    assert_conserved(outputs, mixed_folder["good"] + mixed_folder["bad"])
    inference = [r for r in outputs[FAILED] if r["stage"] == "inference"]
    assert sorted(r["uri"] for r in inference) == sorted(mixed_folder["good"])
    assert all("device-side assert" in r["error"] for r in inference)
    assert summary[FAILED] == len(outputs[FAILED]) and summary["images"] == len(outputs[FAILED])
