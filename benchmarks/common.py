"""Shared pieces of the benchmarks: synthetic crawl-like images, timing, RSS sampling."""

from __future__ import annotations

import io
import os
import threading
import time
from contextlib import contextmanager

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(REPO, "samples")


def make_large_jpegs(dest: str, n: int, size=(1500, 1000), quality: int = 90, seed: int = 0) -> list[str]:
    """``n`` JPEGs of about 1.5 MP made from the real sample photos (upscaled, cropped,
    mirrored and lightly noised, so no two files are the same), like crawled photos."""
    os.makedirs(dest, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = [Image.open(os.path.join(SAMPLES, f)).convert("RGB") for f in sorted(os.listdir(SAMPLES))]
    paths = []
    for i in range(n):
        img = sources[i % len(sources)]
        w, h = size if i % 3 else size[::-1]  # a third portrait
        scale = max(w / img.width, h / img.height) * (1 + 0.2 * rng.random())
        big = img.resize((int(img.width * scale) + 1, int(img.height * scale) + 1), Image.Resampling.BICUBIC)
        x, y = rng.integers(0, big.width - w + 1), rng.integers(0, big.height - h + 1)
        arr = np.asarray(big.crop((x, y, x + w, y + h)), dtype=np.int16)
        arr = np.clip(arr + rng.integers(-6, 7, arr.shape), 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            arr = arr[:, ::-1]
        path = os.path.join(dest, f"crawl_{i:05d}.jpg")
        Image.fromarray(arr).save(path, "JPEG", quality=quality)
        paths.append(path)
    return paths


def jpeg_bytes(paths: list[str]) -> list[bytes]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def per_item_ms(fn, items, repeat: int = 1) -> float:
    """Milliseconds per item of ``fn(item)``, best of ``repeat`` passes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - start) / len(items))
    return best * 1000


class ChildRssSampler:
    """Samples the memory of this process's children (Beam's worker processes) every
    ``interval`` seconds. ``peak_mb``: the largest resident set (RSS) any one child reached;
    ``peak_uss_mb``: the largest unique set (memory not shared with other processes: most
    of torch's library pages are shared between workers)."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self._me = psutil.Process()
        self.interval = interval
        self.peak_mb = 0.0
        self.peak_uss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            for child in self._me.children(recursive=True):
                try:
                    info = child.memory_full_info()
                    self.peak_mb = max(self.peak_mb, info.rss / 2**20)
                    self.peak_uss_mb = max(self.peak_uss_mb, info.uss / 2**20)
                except psutil.Error:
                    pass
            self._stop.wait(self.interval)

    @contextmanager
    def sampling(self):
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def scaled_rate(small_n: int, small_s: float, large_n: int, large_s: float) -> float:
    """Images per second at scale: the difference of a small and a large run, so that the
    fixed start-up cost (workers, model load) cancels out."""
    return (large_n - small_n) / max(large_s - small_s, 1e-9)


def decode_full(data: bytes, short_edge: int = 256) -> np.ndarray:
    """The naive decode: full-size decode, then a PIL resize (no draft mode)."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    scale = short_edge / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
    return np.asarray(img)


SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def labelled_images(data_dir: str = SHARED_DATA, split: str = "dev") -> list[dict]:
    """The records of ``data_dir/labels.jsonl`` in ``split``, each with ``file`` (its full path)."""
    import json

    with open(os.path.join(data_dir, "labels.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [{**r, "file": os.path.join(data_dir, r["path"])} for r in records if r.get("split") == split]


def text_chars_kept(reference: list[str], found: list[str]) -> tuple[int, int]:
    """(characters of ``reference`` also in ``found``, characters of ``reference``): the
    multiset overlap of non-space characters, so word order and box splits do not matter."""
    from collections import Counter

    ref = Counter("".join(reference).replace(" ", ""))
    got = Counter("".join(found).replace(" ", ""))
    return sum((ref & got).values()), sum(ref.values())
