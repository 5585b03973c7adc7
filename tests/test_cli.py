"""The command line a user meets: --help, unknown flags, missing inputs (pipeline.cli,
pipeline.options, pipeline.run.main)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pipeline.cli import UsageError, check_flags
from pipeline.options import FLAGS, GROUPS, readme_with_flags
from pipeline.run import main, run
from tests.conftest import REPO, SAMPLES
from tests.pipeline_helpers import assert_conserved, read_outputs

RUNNER = ["--runner=FnApiRunner"]


def test_help_lists_every_flag_with_its_default_in_its_group(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    entries = {m[1]: " ".join(m[2].split()) for m in re.finditer(r"^  --(\w+)(.*?)(?=^  -|^\S)", text, re.M | re.S)}
    for flag in FLAGS:  # its entry: the flag, its one line, its default
        assert entries[flag.name].endswith(f"(default: {flag.default_text().replace('`', '')})"), flag.name
    assert " ".join(text.split()).count("(default: ") == len(FLAGS)
    positions = [text.index(f"\n{group}:\n") for group in GROUPS]
    assert positions == sorted(positions)
    assert text.index("\ninput:\n") < text.index("--input_list") < text.index("\noutput:\n")
    assert "--help_beam" in text


def test_help_beam_lists_beams_runner_flags(capsys):
    with pytest.raises(SystemExit):
        main(["--help_beam"])
    text = capsys.readouterr().out
    for flag in ("--runner", "--direct_running_mode", "--project", "--flink_master", "--job_endpoint",
                 "--environment_type", "--sdk_container_image"):
        assert flag in text
    assert "--input_list" not in text


def test_readme_flag_tables_are_generated_from_the_definitions():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert readme_with_flags(readme) == readme, "README flags differ: run python -m pipeline.options --readme README.md"
    for flag in FLAGS:
        assert f"| `--{flag.name}` |" in readme


@pytest.mark.parametrize("argv,named,suggested", [
    (["--inptu", SAMPLES], "--inptu", "--input"),
    (["--input", SAMPLES, "--outptu=x"], "--outptu", "--output"),
    (["--runner=DataflowRunner", "--projcet=p"], "--projcet", "--project"),
    (["--runner=FlinkRunner", "--flink_mastr=localhost:8081"], "--flink_mastr", "--flink_master"),
    (["--runner=FlinkRunner", "--treshold", "0.3"], "--treshold", "--threshold"),
])
def test_mistyped_flag_exits_2_naming_it_and_writes_nothing(argv, named, suggested, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"unknown flag {named}; did you mean {suggested}?" in err
    assert not out.exists()


def test_a_value_without_its_flag_exits_2(tmp_path, capsys):
    assert main([SAMPLES, "--output", str(tmp_path / "out")]) == 2
    assert "unexpected argument" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_mistyped_flag_from_the_shell_exits_2():
    done = subprocess.run([sys.executable, "-m", "pipeline.run", "--inptu", "photos/"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "did you mean --input?" in done.stderr


@pytest.mark.parametrize("argv", [
    ["--runner=DataflowRunner", "--project=p", "--region=europe-west1", "--temp_location=gs://b/tmp",
     "--staging_location=gs://b/staging", "--setup_file=./setup.py", "--machine_type=n2-standard-4",
     "--sdk_container_image=gcr.io/p/image", "--max_num_workers=4", "--no_use_public_ips", "--experiments=a,b"],
    ["--runner=FlinkRunner", "--flink_master=localhost:8081", "--environment_type=PROCESS",
     '--environment_config={"command": "/opt/beam/boot"}', "--parallelism=2"],
    ["--runner=PortableRunner", "--job_endpoint=localhost:8099", "--environment_type=EXTERNAL",
     "--environment_config=localhost:50000", "--artifact_endpoint=localhost:8098"],
    ["--runner", "SparkRunner", "--spark_master_url", "local[4]"],
    ["--direct_running_mode=multi_processing", "--direct_num_workers=2", "--save_main_session"],
])
def test_runner_flags_beam_knows_are_accepted(argv):
    check_flags([*argv, "--input", "gs://b/*", "--output", "gs://b/out", "--state", "gs://b/state"])


def test_job_server_runner_options_pass_through_but_not_elsewhere():
    flink_own = ["--checkpointing_interval=60000", "--object_reuse", "--state_backend", "rocksdb"]
    check_flags(["--runner=FlinkRunner", "--flink_master=localhost:8081", *flink_own])
    check_flags(["--runner=PortableRunner", "--job_endpoint=localhost:8099", *flink_own])
    with pytest.raises(UsageError, match="unknown flag --checkpointing_interval"):
        check_flags(["--runner=DataflowRunner", *flink_own])
    with pytest.raises(UsageError, match="unknown flag --object_reuse"):
        check_flags(flink_own[1:])


def test_bad_flag_values_are_usage_errors(tmp_path):
    out = str(tmp_path / "out")
    assert main(["--ocr", "tesseract", "--output", out]) == 2
    assert main(["--threshold", "high", "--output", out]) == 2
    assert main(["--progress_interval", "0", "--output", out]) == 2
    assert not os.path.exists(out)


@pytest.mark.parametrize("flag", ["--input", "--input_list"])
def test_missing_local_input_exits_2_before_the_run(flag, tmp_path, capsys):
    missing, out = str(tmp_path / "no" / "such" / "folder"), tmp_path / "out"
    assert main([flag, missing, "--output", str(out)]) == 2
    assert f"{missing} does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_glob_matching_nothing_is_an_empty_run(student_checkpoint, tmp_path, caplog):
    out = str(tmp_path / "out")
    summary = run([*RUNNER, "--input", str(tmp_path / "nothing-new" / "*.jpg"), "--output", out,
                   "--model_path", student_checkpoint, "--progress", "none"])
    assert summary["images"] == 0
    assert read_outputs(out) == {"text": [], "non_text": [], "failed": []}
    assert "matched no files" in caplog.text


def test_missing_uris_inside_a_list_stay_failed_records(student_checkpoint, tmp_path):
    uris = [os.path.join(SAMPLES, sorted(os.listdir(SAMPLES))[0]), str(tmp_path / "gone.jpg")]
    listing = tmp_path / "uris.txt"
    listing.write_text("\n".join(uris) + "\n")
    out = str(tmp_path / "out")
    assert main([*RUNNER, "--input_list", str(listing), "--output", out, "--model_path", student_checkpoint]) == 0
    outputs = read_outputs(out)
    assert_conserved(outputs, uris)
    assert [r["uri"] for r in outputs["failed"]] == [uris[1]]
