"""The paper's ablation (Table II) with one budget for every row, as a markdown table.

    python -m training.ablation --teacher model/weights/teacher.pt --epochs 10 --ab_epochs 2
    python -m training.ablation --rows full --existing hard=runs/student-hard/student.pt   # plug in runs done

Rows (every row gets ``--epochs`` epochs of student training in all):

    hard      hard region labels                      distill --stage hard
    soft      soft labels (L_K)                       distill --stage soft
    soft_adv  soft labels + 0.2 BEGAN (L_K + b L_G)   distill --stage soft_adv
    full      AB pre-training, then L_K + 0.2 L_G     distill --stage ab (--ab_epochs), then
                                                      --stage kd --init ab.pt (the rest)

Each row's student goes to ``<out_dir>/<row>.pt`` and is evaluated on dev (AP; P/R/F and
non-text rejection at the threshold for recall ``--target_recall``); a row whose
checkpoint exists is not trained again (``--retrain`` forces it), and ``--existing
row=path`` takes a checkpoint trained elsewhere (its epochs are read from its meta).
Rows not trained are listed as "not run yet". The table goes to ``<out_dir>/ablation.md``.
Other flags (``--lr``, ``--batch_size``, ``--root``, ...) are passed to ``training.distill``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from model.preprocessing import preprocess_from_meta
from model.registry import load_checkpoint
from training import distill
from training.cli import add_config_args, config_from_args
from training.config import DataConfig
from training.curves import chain_history, run_chain
from training.evaluate import evaluate_model, evaluate_predictions

log = logging.getLogger("training.ablation")

ROWS = {
    "hard": "hard labels",
    "soft": "soft labels",
    "soft_adv": "soft labels + adversarial",
    "full": "AB pre-training + soft labels + adversarial",
}
PAPER_F = {"hard": 89.5, "soft": 91.5, "soft_adv": 92.5, "full": 93.0}


def train_row(row: str, out_dir: Path, teacher: str, epochs: int, ab_epochs: int, extra: list[str]) -> Path:
    out = out_dir / f"{row}.pt"
    common = ["--teacher", teacher, *extra]
    if row == "full":
        ab = out_dir / "full_ab.pt"
        distill.main(["--stage", "ab", "--epochs", str(ab_epochs), "--out_dir", str(out_dir / "full_ab"),
                      "--out", str(ab), *common])
        distill.main(["--stage", "kd", "--init", str(ab), "--epochs", str(epochs - ab_epochs),
                      "--out_dir", str(out_dir / "full"), "--out", str(out), *common])
    else:
        distill.main(["--stage", row, "--epochs", str(epochs), "--out_dir", str(out_dir / row), "--out", str(out),
                      *common])
    return out


def teacher_of(checkpoint: Path) -> str:
    """The teacher a row was distilled from (its path as recorded in the checkpoint or in
    the one it started from), or "-"."""
    return next((meta["teacher"] for meta in reversed(run_chain(checkpoint)) if meta.get("teacher")), "-")


def describe_teacher(teacher: str) -> str:
    """One line on the teacher checkpoint: path, epochs trained, width."""
    if not Path(teacher).is_file():
        return f"Teacher `{teacher}`: not found."
    model, meta = load_checkpoint(teacher)
    width = getattr(model.config, "width", "?")
    return f"Teacher for rows trained now: `{teacher}`, {len(meta.get('history') or [])} epochs, width {width}."


def row_budget(checkpoint: Path) -> tuple[int, float, str]:
    """(epochs, training seconds, optimiser summary) from a checkpoint's meta, AB stage
    included for the full row (``meta["init"]``)."""
    chain = run_chain(checkpoint)
    cfg = chain[-1].get("train_config") or {}
    summary = f"{cfg.get('optimizer', '?')} lr {cfg.get('lr', '?')} b{cfg.get('batch_size', '?')}"
    history = chain_history(chain)
    return len(history), sum(float(h.get("seconds", 0)) for h in history), summary


def evaluate_row(checkpoint: Path, data_cfg: DataConfig, target_recall: float) -> dict:
    cache = checkpoint.with_name(f"{checkpoint.stem}_dev_ablation.json")
    if cache.is_file() and cache.stat().st_mtime >= checkpoint.stat().st_mtime:
        return json.loads(cache.read_text())
    model, meta = load_checkpoint(checkpoint)
    figures = evaluate_predictions(evaluate_model(model.to(memory_format=torch.channels_last), data_cfg,
                                                  data_cfg.eval_split, preprocess=preprocess_from_meta(meta)),
                                   target_recall=target_recall)
    cache.write_text(json.dumps(figures, indent=2))
    return figures


def markdown_table(results: dict, target_recall: float, teacher_line: str = "") -> str:
    lines = [*([teacher_line, ""] if teacher_line else []),
             "| row | method | teacher | epochs | train time | optimiser | dev AP | P | R | F | non-text rejection "
             "| paper F (TextDis) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row, method in ROWS.items():
        r = results.get(row)
        if r is None:
            lines.append(f"| {row} | {method} | | not run yet | | | | | | | | {PAPER_F[row]} |")
            continue
        a = r["figures"]["at_threshold"]
        lines.append(f"| {row} | {method} | {r['teacher']} | {r['epochs']} | {r['seconds'] / 60:.1f} min "
                     f"| {r['optimiser']} | {r['figures']['average_precision']:.3f} | {a['precision']:.3f} | {a['recall']:.3f} "
                     f"| {a['f1']:.3f} | {a['rejection']:.3f} | {PAPER_F[row]} |")
    lines.append("")
    lines.append(f"P / R / F / rejection at the dev threshold chosen for recall >= {target_recall}; "
                 "train time is the sum of the logged epoch times (AB stage included for the full row).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)  # other flags go to training.distill unabbreviated
    parser.add_argument("--teacher", default="model/weights/teacher.pt")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--epochs", type=int, default=10, help="student epochs per row (AB ones included)")
    parser.add_argument("--ab_epochs", type=int, default=2)
    parser.add_argument("--out_dir", default="runs/ablation")
    parser.add_argument("--existing", nargs="*", default=[], metavar="ROW=CHECKPOINT")
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--no_train", action="store_true", help="only tabulate rows whose checkpoints exist")
    parser.add_argument("--target_recall", type=float, default=0.95)
    parser.add_argument("--root", default=None, help="data root (also passed to training)")
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.root:
        extra = ["--root", args.root, *extra]
    data_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_config_args(data_parser, DataConfig)
    data_cfg = config_from_args(DataConfig, data_parser.parse_known_args(extra)[0])

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = dict(spec.split("=", 1) for spec in args.existing)
    results = {}
    for row in ROWS:
        ckpt = Path(existing[row]) if row in existing else out_dir / f"{row}.pt"
        if row in args.rows and row not in existing and not args.no_train and (args.retrain or not ckpt.is_file()):
            ckpt = train_row(row, out_dir, args.teacher, args.epochs, args.ab_epochs, extra)
        if not ckpt.is_file():
            continue
        epochs, seconds, optimiser = row_budget(ckpt)
        results[row] = {"checkpoint": str(ckpt), "teacher": teacher_of(ckpt), "epochs": epochs, "seconds": seconds,
                        "optimiser": optimiser, "figures": evaluate_row(ckpt, data_cfg, args.target_recall)}
        log.info("%s: %s", row, results[row]["figures"]["at_threshold"])
    table = markdown_table(results, args.target_recall, describe_teacher(args.teacher))
    (out_dir / "ablation.md").write_text(table)
    print(table)
    return table


if __name__ == "__main__":
    main()
