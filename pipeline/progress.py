"""Progress of a run while it lasts, on the runners whose workers share the driver's disk
(the in-process ``FnApiRunner`` and its ``multi_processing`` mode).

Beam's metrics reach the driver only when such a run ends, so ``Tally`` steps count
elements on the workers into small files of a local folder (one per DoFn instance,
rewritten at most every second and at the end of each bundle), and ``ProgressReporter``, a
thread on the driver, sums them every ``interval_s`` seconds into one line: images decided
so far (text / non_text / failed), images per second and, where the total is known, the
share done and the time left. A run shorter than ``interval_s`` prints nothing. On Dataflow
the same figures are the job's Beam metrics (namespace ``textfilter``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from typing import Callable, Optional, TextIO

import apache_beam as beam

from pipeline.records import FAILED, NON_TEXT, ROUTES, TEXT

LISTED = "listed"
FLUSH_S = 1.0
BAR_REFRESH_S = 1.0
BAR_WIDTH = 24


class TallyFn(beam.DoFn):
    """Counts its elements into ``progress_dir/<key>-<id>.json``; emits nothing."""

    def __init__(self, progress_dir: str, key: str, flush_s: float = FLUSH_S):
        self.progress_dir = progress_dir
        self.key = key
        self.flush_s = flush_s

    def setup(self):
        self.path = os.path.join(self.progress_dir, f"{self.key}-{uuid.uuid4().hex}.json")
        self.count = 0
        self.written_at = time.monotonic()

    def process(self, element):
        self.count += 1
        if time.monotonic() - self.written_at >= self.flush_s:
            self._write()
        return ()

    def finish_bundle(self):
        self._write()

    def _write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"key": self.key, "count": self.count}, f)
        os.replace(tmp, self.path)
        self.written_at = time.monotonic()


class Tally(beam.PTransform):
    """A branch that counts a PCollection's elements for ``ProgressReporter``."""

    def __init__(self, progress_dir: str, key: str):
        super().__init__()
        self.progress_dir = progress_dir
        self.key = key

    def expand(self, pcoll):
        return pcoll | beam.ParDo(TallyFn(self.progress_dir, self.key))


def read_tallies(progress_dir: str) -> dict[str, int]:
    """The sum of every tally file's count, per key."""
    counts = dict.fromkeys((*ROUTES, LISTED), 0)
    for name in os.listdir(progress_dir):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(progress_dir, name), encoding="utf-8") as f:
                tally = json.load(f)
        except (OSError, ValueError):  # replaced while read: counted next time
            continue
        counts[tally["key"]] = counts.get(tally["key"], 0) + tally["count"]
    return counts


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(counts: dict, rate: float, total: Optional[int]) -> str:
    """One progress line; ``total``: the images to decide, None where unknown."""
    decided = sum(counts.get(route, 0) for route in ROUTES)
    line = (f"textfilter: {decided:,} images decided ({counts.get(TEXT, 0):,} text / {counts.get(NON_TEXT, 0):,} "
            f"non_text / {counts.get(FAILED, 0):,} failed), {rate:.1f} img/s")
    if total:
        share = min(decided / total, 1.0)
        line += f", {share:.0%} of {total:,}"
        if rate > 0 and decided < total:
            line += f", ~{_duration((total - decided) / rate)} left"
    elif not decided and counts.get(LISTED):
        line += f", {counts[LISTED]:,} inputs listed"
    return line


def progress_bar(counts: dict, rate: float, total: Optional[int]) -> str:
    line = progress_line(counts, rate, total).removeprefix("textfilter: ")
    if not total:
        return line
    done = sum(counts.get(route, 0) for route in ROUTES)
    filled = int(BAR_WIDTH * min(done / total, 1.0))
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {line}"


class ProgressReporter:
    """A driver thread that reports the tallies of ``progress_dir`` while the run lasts:
    ``log``, a line every ``interval_s``; ``bar``, one line redrawn every second on a
    terminal (a line every ``interval_s`` elsewhere). ``total_known``: the listed inputs are
    the images to decide (no ``--state`` skips, no tar shards opened into members)."""

    def __init__(self, progress_dir: str, mode: str = "log", interval_s: float = 30.0, total_known: bool = False,
                 stream: Optional[TextIO] = None, clock: Callable[[], float] = time.monotonic):
        self.progress_dir = progress_dir
        self.stream = stream or sys.stderr
        self.bar = mode == "bar" and self.stream.isatty()
        self.interval_s = min(BAR_REFRESH_S, interval_s) if self.bar else interval_s
        self.total_known = total_known
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="textfilter-progress", daemon=True)
        self._last = (clock(), 0)
        self._drawn = False

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()

    def _loop(self):
        while not self._stop.wait(self.interval_s):
            self.report()

    def report(self) -> str:
        counts = read_tallies(self.progress_dir)
        decided = sum(counts[route] for route in ROUTES)
        now = self.clock()
        then, decided_then = self._last
        rate = (decided - decided_then) / (now - then) if now > then else 0.0
        self._last = (now, decided)
        total = counts[LISTED] if self.total_known and decided else None  # listing ends before deciding
        if self.bar:
            text = progress_bar(counts, rate, total)
            self.stream.write("\r" + text.ljust(100))
            self._drawn = True
        else:
            text = progress_line(counts, rate, total)
            self.stream.write(text + "\n")
        self.stream.flush()
        return text
