"""The textfilter package. ``pip install .`` (and ``--setup_file ./setup.py`` on Dataflow or
Flink workers) installs the base: what runs the pipeline with the ONNX student. Extras add
what other uses need: ``dataflow`` (launching on Dataflow), ``torch`` (``--model_format torch``), ``ocr`` (``--ocr rapidocr``),
``train`` (training, export, benchmarks), ``dev`` (tests), ``all``. Every list is read from
``requirements/<name>.txt``, the files ``requirements.txt`` (``make``) installs, so pins
cannot drift. The student's weights ship with the code; ``textfilter`` is the CLI."""

import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))
EXTRAS = ("dataflow", "torch", "ocr", "train", "dev")


def requirements(name: str) -> list[str]:
    """The requirements in ``requirements/<name>.txt``, following ``-r`` includes."""
    return _read(os.path.join(HERE, "requirements", f"{name}.txt"))


def _read(path: str) -> list[str]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line.startswith("-r"):
                out += [r for r in _read(os.path.join(os.path.dirname(path), line[2:].strip())) if r not in out]
            elif line:
                out.append(line)
    return out


extras = {name: requirements(name) for name in EXTRAS}
extras["all"] = sorted({r for reqs in extras.values() for r in reqs})

setuptools.setup(
    name="textfilter",
    version="0.1.0",
    description="Fast text/non-text image filter (Zhao et al., ICDAR 2019) as an Apache Beam pipeline",
    packages=setuptools.find_packages(include=["model", "model.*", "pipeline", "pipeline.*", "training", "training.*"]),
    package_data={"model": ["weights/student.pt", "weights/student.onnx"]},  # not the teacher
    include_package_data=True,
    install_requires=requirements("base"),
    extras_require=extras,
    entry_points={"console_scripts": ["textfilter = pipeline.run:main"]},
    python_requires=">=3.10",
)
