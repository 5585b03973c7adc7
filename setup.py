"""Package for Dataflow / Flink workers: `--setup_file ./setup.py` installs the same pins
as requirements.txt and ships the student's weights with the code."""

import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_ONLY = ("pytest", "hypothesis", "gcp-storage-emulator")


def requirements():
    with open(os.path.join(HERE, "requirements.txt")) as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    return [r for r in lines if r and not r.startswith(TEST_ONLY)]


setuptools.setup(
    name="textfilter",
    version="0.1.0",
    description="Fast text/non-text image filter (Zhao et al., ICDAR 2019) as an Apache Beam pipeline",
    packages=setuptools.find_packages(include=["model", "model.*", "pipeline", "pipeline.*", "training", "training.*"]),
    package_data={"model": ["weights/student.pt", "weights/student.onnx"]},  # not the teacher
    include_package_data=True,
    install_requires=requirements(),
    python_requires=">=3.10",
)
