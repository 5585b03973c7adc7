"""Progress while a run lasts (pipeline.progress): lines on a run made slow on purpose,
none on a short one, the figures of a line."""

from __future__ import annotations

import io
import os
import re
import time

import pytest

import pipeline.transforms
from pipeline.progress import LISTED, ProgressReporter, TallyFn, progress_bar, progress_line, read_tallies
from pipeline.run import run
from tests.conftest import SAMPLES

RUNNER = ["--runner=FnApiRunner"]
LINE = re.compile(r"^textfilter: (\d+) images decided \((\d+) text / (\d+) non_text / (\d+) failed\), ([\d.]+) img/s")


@pytest.fixture
def slow_decode(monkeypatch):
    """Every image takes 50 ms more to decode (the DoFns run in this process)."""
    decode = pipeline.transforms.decode_image

    def slow(*args, **kwargs):
        time.sleep(0.05)
        return decode(*args, **kwargs)

    monkeypatch.setattr(pipeline.transforms, "decode_image", slow)


def test_progress_lines_on_a_slow_run(slow_decode, student_checkpoint, tmp_path, capsys):
    n = len(os.listdir(SAMPLES))
    summary = run([*RUNNER, "--output", str(tmp_path / "out"), "--model_path", student_checkpoint,
                   "--progress_interval", "0.1", "--batch_size", "1"])
    lines = [line for line in capsys.readouterr().err.splitlines() if LINE.match(line)]
    assert len(lines) >= 3
    decided = [int(LINE.match(line)[1]) for line in lines]
    assert decided == sorted(decided) and decided[-1] <= n
    assert any(0 < d for d in decided)
    for line in lines:  # the routes add up to the images decided
        m = LINE.match(line)
        assert int(m[2]) + int(m[3]) + int(m[4]) == int(m[1])
    assert any(f"of {n}" in line for line in lines)  # the total is known: the samples listed
    assert summary["images"] == n


def test_progress_none_is_silent_on_a_slow_run(slow_decode, student_checkpoint, tmp_path, capsys):
    run([*RUNNER, "--output", str(tmp_path / "out"), "--model_path", student_checkpoint,
         "--progress", "none", "--progress_interval", "0.1"])
    assert "images decided" not in capsys.readouterr().err


def test_a_run_shorter_than_the_interval_prints_nothing(tmp_path):
    out = io.StringIO()
    with ProgressReporter(str(tmp_path), "log", 30.0, stream=out):  # the default interval
        time.sleep(0.2)
    assert out.getvalue() == ""


def test_line_has_rate_share_and_time_left():
    counts = {"text": 100, "non_text": 280, "failed": 20, LISTED: 1000}
    assert progress_line(counts, 50.0, 1000) == (
        "textfilter: 400 images decided (100 text / 280 non_text / 20 failed), 50.0 img/s, 40% of 1,000, ~12 s left")
    assert progress_line(counts, 0.5, 1_000_000).endswith("0% of 1,000,000, ~555 h 20 min left")
    assert progress_line(counts, 50.0, None).endswith("50.0 img/s")
    assert progress_line({LISTED: 7}, 0.0, None).endswith("7 inputs listed")
    assert progress_bar(counts, 50.0, 1000).startswith("[#########.")


def test_tallies_are_summed_across_workers_and_reported(tmp_path):
    folder = str(tmp_path)
    for key, count in (("text", 3), ("text", 2), ("failed", 1), (LISTED, 10)):
        fn = TallyFn(folder, key)
        fn.setup()
        for _ in range(count):
            fn.process(object())
        fn.finish_bundle()
    assert read_tallies(folder) == {"text": 5, "non_text": 0, "failed": 1, LISTED: 10}
    ticks = iter([0.0, 2.0])
    out = io.StringIO()
    reporter = ProgressReporter(folder, "bar", 30.0, total_known=True, stream=out, clock=lambda: next(ticks))
    assert reporter.report() == (  # not a terminal: a line
        "textfilter: 6 images decided (5 text / 0 non_text / 1 failed), 3.0 img/s, 60% of 10, ~1 s left")
    assert out.getvalue().endswith("left\n")
