"""The command line a user meets: ``--help`` from the flag definitions, and flags checked
against every option Beam knows before anything is read or written.

Beam's ``PipelineOptions`` only warns about a flag it does not know and runs on; a mistyped
flag in a nightly job would be a silent wrong run. ``check_flags`` parses the command line
with every registered ``PipelineOptions`` class (Beam's runner, Dataflow, Flink, Spark and
portable options, and ``TextFilterOptions``) and refuses what none of them knows. A job
server's runner (Flink, Spark, portable, Prism) declares more options of its own when the
job is submitted, so there an unknown flag passes through to it unless it is a near miss of
a known flag.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from typing import Optional, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from pipeline.options import TextFilterOptions, add_flags

PROG = "python -m pipeline.run"
BEAM_HELP = "--help_beam"
# On job-server runners, an unknown flag this close to a known one is taken for a typo.
NEAR_MISS_CUTOFF = 0.8


class UsageError(ValueError):
    """The command line is wrong: the run stops before it starts, with exit status 2."""


def help_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [--input URI ...] [--output URI] [flags ...] [Beam flags ...]",
        description="Decide which images contain text: every input ends in exactly one of the text, "
                    "non_text and failed manifests of --output.",
        epilog=f"Beam's own flags work too (--runner, --direct_running_mode, --direct_num_workers, Dataflow's "
               f"--project / --region / --temp_location, Flink's --flink_master, portable --job_endpoint / "
               f"--environment_type, ...): `{PROG} {BEAM_HELP}` lists them all.",
    )
    add_flags(parser)
    return parser


class _FlagParser(_BeamArgumentParser):
    """Beam's parser, raising ``UsageError`` (one line) where argparse would print the usage
    of every Beam flag and exit."""

    def error(self, message):
        if not message.startswith("ambiguous option: "):  # as Beam's parser
            raise UsageError(message)


def beam_parser(include_textfilter: bool = True) -> _BeamArgumentParser:
    """A parser with the flags of every registered ``PipelineOptions`` class, as Beam's
    ``PipelineOptions.get_all_options`` builds it."""
    parser = _FlagParser(prog=PROG, allow_abbrev=False, add_help=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        if include_textfilter or cls is not TextFilterOptions:
            cls._add_argparse_args(parser)  # noqa: SLF001 - how Beam itself collects them
    return parser


def print_help(argv: Sequence[str], out=None) -> bool:
    """Print ``--help`` (textfilter's flags) or ``--help_beam`` (Beam's) if asked; True if so."""
    out = out or sys.stdout
    if BEAM_HELP in argv:
        parser = beam_parser(include_textfilter=False)
        parser.description = f"Beam's own flags, accepted by {PROG} (its own: {PROG} --help)."
        out.write(parser.format_help())
        return True
    if "-h" in argv or "--help" in argv:
        out.write(help_parser().format_help())
        return True
    return False


def _runner_class(name: str):
    """The class of a ``--runner`` name, resolved as Beam's ``create_runner`` does, or None."""
    wanted = name.lower()
    for path in StandardOptions.ALL_KNOWN_RUNNERS:
        short = path.rsplit(".", 1)[-1].lower()
        if wanted in (short, short.removesuffix("runner")):
            name = path
    if "." not in name:
        return None
    module, cls = name.rsplit(".", 1)
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return None


def uses_job_server(runner: Optional[str]) -> bool:
    """Whether ``--runner`` submits to a job server (Flink, Spark, portable, Prism), which
    may know options of its own."""
    from apache_beam.runners.portability.portable_runner import PortableRunner

    cls = _runner_class(runner) if isinstance(runner, str) else None
    return isinstance(cls, type) and issubclass(cls, PortableRunner)


def check_flags(argv: Sequence[str]) -> None:
    """Raise ``UsageError`` for a flag that neither textfilter nor Beam knows (with the
    nearest known flag), or a value without a flag."""
    # Resolving the runner imports its module, which registers the options it defines.
    job_server = uses_job_server(PipelineOptions(list(argv)).view_as(StandardOptions).runner)
    parser = beam_parser()
    _, unknown = parser.parse_known_args(list(argv))
    known_flags = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]  # noqa: SLF001
    problems = []
    i = 0
    while i < len(unknown):
        arg = unknown[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-"):
            problems.append(f"unexpected argument {arg!r} (a value without its flag?)")
            continue
        name = arg.split("=", 1)[0]
        if "=" not in arg and i < len(unknown) and not unknown[i].startswith("-"):
            i += 1  # the unknown flag's value
        nearest = difflib.get_close_matches(name, known_flags, n=1)
        close = nearest and difflib.SequenceMatcher(None, name, nearest[0]).ratio() >= NEAR_MISS_CUTOFF
        if job_server and not close:
            continue  # the job server's to judge (Beam logs that it could not parse it)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        problems.append(f"unknown flag {name}{hint}")
    if problems:
        raise UsageError(
            "; ".join(problems) + f" (`{PROG} --help` lists textfilter's flags, `{PROG} {BEAM_HELP}` Beam's)")
