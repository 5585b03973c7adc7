"""From a crawl, end to end: img2dataset itself downloads real images from a local HTTP
server (one of them broken, one URL missing) into WebDataset shards and into files, each
with its Parquet manifests, and the pipeline runs on what it wrote.

img2dataset cannot share this environment (it needs opencv-python-headless<5; the OCR
extra's environment has 5), so it runs from a virtual environment of its own:
``$TEXTFILTER_IMG2DATASET_VENV``, else ``textfilter-img2dataset-venv`` in the system's
temporary folder, made on first use (``pip install img2dataset``, ~0.8 GB, minutes) and
reused after. Without a package index the test is skipped, saying why.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
import pytest
from PIL import Image

from pipeline.items import InputItem
from pipeline.run import run
from pipeline.tar import split_member_uri
from pipeline.transforms import ReadAndDecodeFn
from tests.conftest import SAMPLES
from tests.http_server import HttpServer, Route
from tests.pipeline_helpers import read_outputs

IMG2DATASET = "img2dataset==1.47.0"
VENV_VARIABLE = "TEXTFILTER_IMG2DATASET_VENV"
READY = ".textfilter-ready"  # written once the install has finished
DECISION = ("label", "score", "regions_5x5", "regions_3x3")


@pytest.fixture(scope="session")
def img2dataset() -> str:
    """The ``img2dataset`` command, from its own virtual environment (made on first use)."""
    venv = os.environ.get(VENV_VARIABLE) or os.path.join(tempfile.gettempdir(), "textfilter-img2dataset-venv")
    command = os.path.join(venv, "bin", "img2dataset")
    if os.path.exists(os.path.join(venv, READY)) and os.path.exists(command):
        return command
    shutil.rmtree(venv, ignore_errors=True)  # a half-made one
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
    proc = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet", IMG2DATASET],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip(f"cannot install {IMG2DATASET} into {venv}: {proc.stderr.strip().splitlines()[-1:]}")
    open(os.path.join(venv, READY), "w").close()
    return command


def served_images() -> dict[str, bytes]:
    """Real photos as a crawl finds them: JPEGs (img2dataset keeps their bytes with
    ``--skip_reencode``), a PNG (re-encoded as JPEG), a file that is not an image."""
    photos = sorted(os.listdir(SAMPLES))[:5]
    images = {f"/img/{name}": open(os.path.join(SAMPLES, name), "rb").read() for name in photos}
    png = io.BytesIO()
    Image.open(os.path.join(SAMPLES, photos[0])).save(png, "PNG")
    images["/img/photo.png"] = png.getvalue()
    images["/img/broken.jpg"] = b"<html>not an image</html>"
    return images


def crawl(img2dataset: str, urls: list[str], folder, output_format: str) -> str:
    """img2dataset's output for ``urls`` (with captions) in ``output_format``, kept as
    downloaded where it can be (no resizing; JPEGs not re-encoded)."""
    url_list = folder / "urls.csv"
    with open(url_list, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "caption"])
        writer.writerows([url, f"caption of {url.rsplit('/', 1)[1]}"] for url in urls)
    out = str(folder / output_format)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [img2dataset, "--url_list", str(url_list), "--input_format", "csv", "--url_col", "url",
         "--caption_col", "caption", "--output_folder", out, "--output_format", output_format,
         "--resize_mode", "no", "--skip_reencode", "True", "--encode_format", "jpg",
         "--processes_count", "1", "--thread_count", "4", "--number_sample_per_shard", "4", "--timeout", "10",
         "--retries", "0", "--enable_wandb", "False"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def decision(record: dict) -> tuple:
    return tuple(record.get(k) for k in DECISION)


def decisions(records: list[dict], by: str) -> dict:
    return {r[by]: decision(r) for r in records}


def test_img2dataset_output_end_to_end(img2dataset, student_checkpoint, tmp_path):
    images = served_images()
    with HttpServer({path: Route(body=data) for path, data in images.items()}) as server:
        urls = {server.url(path): data for path, data in images.items()}
        missing = server.url("/img/gone.jpg")
        all_urls = sorted([*urls, missing])
        wds = crawl(img2dataset, all_urls, tmp_path, "webdataset")
        files = crawl(img2dataset, all_urls, tmp_path, "files")
        assert len(glob.glob(os.path.join(wds, "*.tar"))) == 2 and len(glob.glob(os.path.join(files, "*.parquet"))) == 2
        outputs = {}
        for name, inputs in {"wds": [f"{wds}/*.tar", f"{wds}/{{00000..00001}}.parquet"],
                             "files": [f"{files}/*.parquet", f"{files}/*/*.jpg"]}.items():
            args = [arg for pattern in inputs for arg in ("--input", pattern)]
            run(["--runner=FnApiRunner", *args, "--output", str(tmp_path / name), "--model_path", student_checkpoint,
                 "--keep_fields", "caption,sha256", "--progress", "none"])
            outputs[name] = [r for route in read_outputs(str(tmp_path / name)).values() for r in route]

    wds_records = outputs["wds"]
    members = [r for r in wds_records if split_member_uri(r["uri"])]
    from_manifest = [r for r in wds_records if not split_member_uri(r["uri"])]
    # every URL once from the manifests: fetched and decided, or failed with the crawler's reason
    assert sorted(r["uri"] for r in from_manifest) == all_urls
    assert all(r["url"] == r["uri"] and r["key"] for r in from_manifest)
    failed = {r["uri"]: r for r in from_manifest if r["label"] == "failed"}
    assert sorted(failed) == sorted([missing, server.url("/img/broken.jpg")])
    assert all(r["error_type"] == "CrawlFailed" and r["stage"] == "read" for r in failed.values())
    assert "failed_to_download" in failed[missing]["error"] and "404" in failed[missing]["error"]
    assert "failed_to_resize" in failed[server.url("/img/broken.jpg")]["error"]
    # every image in the shards once, leading back to its URL, key, caption and the download's hash
    downloaded = sorted(set(urls) - set(failed))
    assert sorted(r["url"] for r in members) == downloaded
    for r in members:
        assert r["label"] != "failed" and r["caption"] == f"caption of {r['url'].rsplit('/', 1)[1]}"
        assert r["sha256"] == hashlib.sha256(urls[r["url"]]).hexdigest()
        assert r["key"] == split_member_uri(r["uri"])[1].removesuffix(".jpg")
    assert sorted(r["key"] for r in members) == sorted(r["key"] for r in from_manifest if r["url"] in downloaded)

    # images img2dataset kept byte for byte: the same decision, to the last bit, from the
    # shard and from the web; the PNG it re-encoded may differ
    kept = {r["url"] for r in members if _member_bytes(r["uri"]) == urls[r["url"]]}
    assert kept == {u for u in downloaded if not u.endswith(".png")}
    by_url = decisions(from_manifest, "url")
    for r in members:  # the same bytes in a shard and in a file: the same array, decoded
        (path,) = glob.glob(f"{files}/*/{r['key']}.jpg")
        data = _member_bytes(r["uri"])
        with open(path, "rb") as f:
            assert f.read() == data
        assert np.array_equal(_decoded(InputItem(r["uri"], data=data)), _decoded(path))
    assert {u: d for u, d in decisions(members, "url").items() if u in kept} == {u: by_url[u] for u in kept}

    # files: the same images as files, and the same manifests
    file_records = {r["uri"]: r for r in outputs["files"] if not r["uri"].startswith("http")}
    assert sorted(os.path.basename(u).removesuffix(".jpg") for u in file_records) == sorted(r["key"] for r in members)
    assert decisions([{**r, "key": os.path.basename(u).removesuffix(".jpg")} for u, r in file_records.items()],
                     "key") == decisions(members, "key")
    files_manifest = [r for r in outputs["files"] if r["uri"].startswith("http")]
    assert sorted(r["uri"] for r in files_manifest) == all_urls
    assert decisions(files_manifest, "url") == decisions(from_manifest, "url")


def _decoded(element):
    ((_, image),) = ReadAndDecodeFn().process(element)
    return image


def _member_bytes(uri: str) -> bytes:
    shard, name = split_member_uri(uri)
    with tarfile.open(shard) as tar:
        return tar.extractfile(name).read()
