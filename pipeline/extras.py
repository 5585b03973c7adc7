"""Which package extra a flag needs, and a clear error where it is not installed.

The base install (``pip install textfilter``, or ``--setup_file ./setup.py`` on workers) runs
the pipeline with the ONNX student. ``--model_format torch`` needs the ``torch`` extra and
``--ocr rapidocr`` the ``ocr`` extra and ``--runner DataflowRunner`` the ``dataflow`` extra
(apache-beam[gcp], on the machine that launches the job) (``requirements/<extra>.txt``). ``check_options`` is
called where the flags are resolved, so a missing extra is one line on stderr, not a
traceback from a worker; ``require`` is also called where a worker loads the model or the
OCR engine, for workers that were given less than the launcher has. Nothing is imported:
``importlib.util.find_spec`` only looks.
"""

from __future__ import annotations

import importlib.util

# extra -> the module it provides
EXTRA_MODULES = {"torch": "torch", "ocr": "rapidocr", "dataflow": "apitools"}  # apitools: what DataflowRunner imports


class MissingExtra(ImportError, ValueError):
    """A flag needs a package extra that is not installed (a ValueError too, so the CLI prints
    it as a usage error)."""


def installed(extra: str) -> bool:
    return importlib.util.find_spec(EXTRA_MODULES[extra]) is not None


def require(extra: str, flag: str) -> None:
    """Raise ``MissingExtra`` naming ``flag`` and the extra to install unless it is installed."""
    if not installed(extra):
        module = EXTRA_MODULES[extra]
        raise MissingExtra(
            f"{flag} needs {module}, which is not installed here: install the {extra!r} extra "
            f"(pip install 'textfilter[{extra}]', or pip install -r requirements/{extra}.txt; on Dataflow or "
            f"Flink workers add --requirements_file requirements/{extra}.txt, see the README's Runners)",
            name=module,
        )


def check_options(model_format: str, ocr: str = "none", runner: str | None = None) -> None:
    """The extras the resolved ``--model_format``, ``--ocr`` and ``--runner`` need are installed
    (launching on Dataflow needs apache-beam's GCP extra; its workers' SDK image has it)."""
    if isinstance(runner, str) and runner.lower().removesuffix("runner") == "dataflow":
        require("dataflow", f"--runner {runner}")
    if model_format == "torch":
        require("torch", "--model_format torch")
    if ocr == "rapidocr":
        require("ocr", "--ocr rapidocr")
