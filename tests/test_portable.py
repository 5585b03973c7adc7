"""The portable-runner path (as used by Flink/Spark): Beam's local job service with an
EXTERNAL worker pool. Flink's own job server needs a jar that cannot be downloaded here;
this exercises the same job API, artifact staging and SDK-harness workers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.run import run
from tests.gcs_emulator import free_port, wait_for_port
from tests.pipeline_helpers import assert_conserved, read_outputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def job_service():
    env = dict(os.environ)
    # Workers are started with the `python` on PATH: make it this interpreter's, and let
    # them import the project.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    job_port, pool_port = free_port(), free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                          "--port", str(job_port)], env=env, cwd=REPO,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                          "--service_port", str(pool_port)], env=env, cwd=REPO,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_for_port(job_port, procs[0])
        wait_for_port(pool_port, procs[1])
        yield job_port, pool_port
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def test_portable_runner_with_external_workers(job_service, mixed_folder, student_checkpoint, tmp_path):
    job_port, pool_port = job_service
    out = str(tmp_path / "out")
    summary = run([
        "--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
        "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}",
        "--input", mixed_folder["dir"], "--output", out, "--model_path", student_checkpoint,
    ])
    outputs = read_outputs(out)
    assert_conserved(outputs, mixed_folder["good"] + mixed_folder["bad"])
    assert summary["images"] == len(mixed_folder["good"]) + len(mixed_folder["bad"])
