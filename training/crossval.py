"""Cross-source validation: train a recipe with whole collections held out, score them.

    python -m training.crossval run --name reference --recipe reference --seeds 0 1
    python -m training.crossval run --name aspect --recipe reference --set fixed_long_edge=0 --seeds 0 1
    python -m training.crossval table                     # one row per name, markdown
    python -m training.crossval run --name plain+poolfolds --recipe reference_fast \
        --folds posters+pets ... --extra --eval_pools /work/pool   # hold out collections of a pool
    python -m training.crossval table --folds imagenet-sample ...  # the means over these folds only
    python -m training.crossval table --baseline reference_fast   # each row: win / level / loss against it
    python -m training.crossval collections --names reference_fast   # per held-out collection
    python -m training.crossval run --name kd-unl --recipe reference_fast \
        --teacher 'runs/crossval/reference/{fold}-s{seed}/student.pt' \
        --set losses=hard:1.0,kd:1.0 unlabelled_share=0.3 --extra --unlabelled_pools /work/pool-unl
    python -m training.crossval run --name kdTuABpre --recipe reference_wide --set losses=ab:1.0 epochs=2 \
        --teacher model/weights/teacher.pt --folds dev      # a two-stage recipe: stage 1 (AB), then stage 2
    python -m training.crossval run --name kdTuAB --recipe reference_wide --set losses=hard:1.0,kd:1.0,began:0.2 \
        --teacher model/weights/teacher.pt --folds dev --init 'runs/crossval/kdTuABpre/{fold}-s{seed}/student.pt'
    python -m training.crossval ensemble --name ens3 --members reference_fast --seeds 0 1 2  # as a teacher would
    python -m training.crossval run --name kd-ens3 --recipe reference_fast --set losses=hard:1.0,kd:1.0 \
        --teacher 'runs/crossval/reference_fast/{fold}-s0/student.pt' \
                  'runs/crossval/reference_fast/{fold}-s1/student.pt' \
                  'runs/crossval/reference_fast/{fold}-s2/student.pt'

Dev (104 non-text images, drawn from the same collections as train) could not rank recipes:
a student that looked level with another there lost by 20 points of rejection on images from
collections the project never saw. So a recipe is judged on **folds that hold out whole
collections** (text and non-text, a ``-pseudo`` source with its collection): trained on
everything else, whatever its split, and scored on the held-out images. ``dev`` (train on the
train split, score dev) is one more fold, reported on its own.

Per fold and seed, on the held-out images (``--rule``: the image score rule):
- ``ap``: average precision of the image score;
- ``reject@r95``: share of non-text images below the threshold that keeps recall >= 0.95
  (the threshold is set on the fold itself, so this measures the ranking, not a threshold);
- ``recall@rej90``: recall at the threshold that rejects 90 % of the non-text images;
- ``jpeg95_flips``: share of images decided differently after re-encoding them as JPEG at
  quality 95 (what img2dataset does to a crawl), at the fold's recall-0.95 threshold.

The table gives, per recipe, each fold's mean over seeds, the mean over the source folds,
and the spread of that mean over seeds (half the range): a recipe beats another only by
more than the spread. The source folds hold out every collection once, so their held-out
scores together are out-of-fold scores of the whole data set: the table also gives AP and
rejection at recall 0.95 of those pooled scores (one threshold for every collection). Every run is kept (``<out_dir>/<name>/<fold>-s<seed>/``: the
checkpoint, ``result.json`` and the held-out scores as ``scores.npz``), and a finished one is
not trained again, so a run can be stopped and started again and rows added one by one.
``runs/`` is not in git: the ``result.json`` of every row in MODEL.md is committed under
``docs/crossval/`` (``cd runs/crossval && find . -name result.json -exec cp --parents {}
../../docs/crossval/ \\;``), and ``table --out_dir docs/crossval`` rebuilds the tables from them (pooled
figures need the held-out scores, so they show only for runs kept in full). ``table`` takes several
directories, oldest first (``--out_dir docs/crossval docs/crossval/session1* runs/crossval``): a run found
in several is taken from the last, so one table holds every row of every session.

Collections of a pool (``training.collections``) are held out like those of the data root. A
recipe that trains on the pool names it with ``--pools``; one that does not names it with
``--eval_pools``, so that it is scored on the same held-out images without training on the rest
of the pool. Compare rows over the same folds (``table --folds``).

Distillation: ``--teacher TEMPLATE`` names each run's teacher checkpoint, ``{fold}`` and
``{seed}`` substituted, so that the teacher of a fold never saw its held-out collections (e.g. the
students of another row, ``runs/crossval/<row>/{fold}-s{seed}/student.pt``). It is loaded frozen
and used by the teacher's loss terms (``--set losses=hard:1.0,kd:1.0``); with ``unlabelled_pools``
and ``unlabelled_share`` the soft labels also cover unlabelled images (of the collections that are
not held out). Every teacher file is checked before anything is trained, and ``result.json`` and
the checkpoint's meta record the one used. Several templates make one teacher, the ensemble of
their checkpoints (``model.ensemble``: mean region probabilities), e.g. the students of three seeds
of a row: seed noise is large, and their mean is a steadier teacher than any one of them.
``ensemble`` scores such an ensemble itself, from the held-out scores of its runs, as a row
with seed 0 only: what the students distilled from it could reach.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from model.preprocessing import decode_image
from model.registry import load_checkpoint
from model.regions import SCORE_RULES, image_score
from training import metrics
from training.augment import jpeg_bytes
from training.data import Sample, TextFilterDataset, collate, collection_of, shape_batches
from training.engine import predict
from training.loop import load_frozen, train
from training.losses import any_term
from training.recipes import RECIPES, parse_settings
from training.train_student import build_parser, parse, settings_argv

log = logging.getLogger("training.crossval")

DEV = "dev"
# Folds of ../shared/data: each holds out text and non-text collections together.
# imagenet-sample: 368 photos + the 174 in which PP-OCR read text (product labels, signs);
# icdar2015 (300 incidental scene text) with urban100 and sun-hays80 (98 scenes, 26 pseudo);
# scenetext-masks (2,600 shop and street signs) with bsds500 (224 photos, 17 pseudo).
DEFAULT_FOLDS = (DEV, "imagenet-sample", "icdar2015+urban100+sun-hays80", "scenetext-masks+bsds500")
TARGET_RECALL = 0.95
TARGET_REJECTION = 0.9
JPEG_QUALITY = 95


def holdout_of(fold: str) -> tuple[str, ...]:
    """The collections fold ``fold`` holds out ("a+b" -> ("a", "b")); none for ``dev``."""
    return () if fold == DEV else tuple(part for part in fold.split("+") if part)


def run_dir(out_dir: Path, name: str, fold: str, seed: int) -> Path:
    return Path(out_dir) / name / f"{fold}-s{seed}"


def train_argv(recipe_name: str, settings: dict, fold: str, seed: int, directory: Path, num_threads: int,
               num_workers: int, extra: Sequence[str] = ()) -> list[str]:
    """The ``training.train_student`` flags of one fold's run."""
    argv = ["--recipe", recipe_name, *settings_argv(settings), "--seed", str(seed), "--num_threads",
            str(num_threads), "--num_workers", str(num_workers), "--loader", "thread", "--eval_every", "0",
            "--out_dir", str(directory), *extra]
    holdout = holdout_of(fold)
    return argv + (["--holdout", *holdout] if holdout else [])


def run_checkpoint(template: str, fold: str, seed: int, flag: str = "teacher") -> Path:
    """The checkpoint one fold's run needs (its ``--teacher``, or the ``--init`` it starts from):
    ``template`` with ``{fold}`` and ``{seed}`` substituted; raises when there is no such file."""
    try:
        path = Path(template.format(fold=fold, seed=seed))
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"{flag} template {template!r}: only {{fold}} and {{seed}} are substituted ({e!r})") from None
    if not path.is_file():
        raise FileNotFoundError(f"no {flag} checkpoint {path} for fold {fold} seed {seed} (--{flag} {template})")
    return path


def scored_twice(dataset: TextFilterDataset, quality: int) -> Iterator[tuple[Sample, Sample]]:
    """Every image of ``dataset`` as the pipeline decodes it, and the same after the stored image
    is re-encoded as JPEG at ``quality`` (labels shared): each image is read once."""
    for item in dataset.items():
        sample = dataset[item]
        data = jpeg_bytes(dataset.store.open(sample.path, dataset.preprocess), quality)
        yield sample, dataclasses.replace(sample, image=decode_image(data, dataset.preprocess))


def score_heldout(model: torch.nn.Module, dataset: TextFilterDataset, batch_size: int = 32) -> dict:
    """Region probabilities of the held-out images, as decoded and after a JPEG q95 re-encode."""
    pairs = list(scored_twice(dataset, JPEG_QUALITY))  # ~0.5 MB per image: a fold of 3,000 fits in memory
    pred = predict(model, (collate(g) for g in shape_batches((p[0] for p in pairs), batch_size)))
    again = predict(model, (collate(g) for g in shape_batches((p[1] for p in pairs), batch_size)))
    # both lists hold the same shapes in the same order, so shape batching orders them alike
    assert list(again["paths"]) == list(pred["paths"])
    pred["probs_jpeg95"] = again["probs"]
    return pred


def fold_figures(pred: dict, rule: str) -> dict:
    """The fold's figures (see the module docstring) with image scores by ``rule``."""
    labels = np.asarray(pred["image_labels"])
    scores = image_score(np.asarray(pred["probs"]), rule)
    again = image_score(np.asarray(pred["probs_jpeg95"]), rule)
    threshold, rejection = metrics.rejection_at_recall(scores, labels, TARGET_RECALL)
    _, recall = metrics.recall_at_rejection(scores, labels, TARGET_REJECTION)
    return {"ap": metrics.average_precision(scores, labels), "reject@r95": rejection, "recall@rej90": recall,
            "thr@r95": threshold, "jpeg95_flips": metrics.decision_flips(scores, again, threshold),
            "jpeg95_mean_change": float(np.abs(scores - again).mean()) if len(scores) else 0.0,
            "n_text": int(labels.sum()), "n_non_text": int((labels == 0).sum())}


def run_fold(name: str, recipe_name: str, settings: dict, fold: str, seed: int, out_dir: Path, num_threads: int = 2,
             num_workers: int = 1, extra: Sequence[str] = (), teacher: Sequence[str] = (),
             init: str | None = None) -> dict:
    """Train (unless done) and score one fold with one seed; the result is also written to
    ``<run dir>/result.json``. ``teacher``: templates of the teacher checkpoint's path
    (``run_checkpoint``), for recipes whose losses use a teacher; several make one ensemble.
    ``init``: the template of the checkpoint the run starts from (a recipe's second stage, e.g.
    ``runs/crossval/kdTuABpre/{fold}-s{seed}/student.pt``)."""
    directory = run_dir(out_dir, name, fold, seed)
    result_path = directory / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    checkpoint = directory / "student.pt"
    if init is not None:
        if "--init" in extra:
            raise ValueError("--init given twice: as a template (--init) and among --extra")
        extra = [*extra, "--init", str(run_checkpoint(init, fold, seed, "init"))]
    args, train_cfg, data_cfg, _ = parse(build_parser(), train_argv(recipe_name, settings, fold, seed, directory,
                                                                     num_threads, num_workers, extra))
    needs_teacher = any_term(train_cfg.losses, "needs_teacher")
    if needs_teacher != bool(teacher):
        raise ValueError(f"losses {' '.join(train_cfg.losses)} " + ("need a teacher: give --teacher TEMPLATE"
                         if needs_teacher else f"use no teacher, but --teacher {' '.join(teacher)} was given"))
    teacher_files = [str(run_checkpoint(t, fold, seed)) for t in teacher]
    teacher_file = teacher_files[0] if len(teacher_files) == 1 else (teacher_files or None)
    start = time.perf_counter()
    if not checkpoint.is_file():
        resume_from = str(directory / "last.pt") if (directory / "last.pt").is_file() else None
        frozen = load_frozen(teacher_files, channels_last=train_cfg.channels_last) if teacher_files else None
        train(train_cfg, data_cfg, out=str(checkpoint), resume_from=resume_from, teacher=frozen, init=args.init,
              stage="distill" if frozen is not None else "hard",
              meta_extra={"recipe": recipe_name, "settings": settings, "fold": fold, "teacher": teacher_file})
    seconds = time.perf_counter() - start
    torch.set_num_threads(num_threads)
    model, _ = load_checkpoint(checkpoint)
    model = model.to(memory_format=torch.channels_last)
    pred = score_heldout(model, TextFilterDataset.for_role(data_cfg, "eval"))
    return write_run(directory, pred, {"name": name, "recipe": recipe_name, "settings": settings, "fold": fold,
                                       "seed": seed, "teacher": teacher_file, "train_seconds": round(seconds, 1)})


SCORE_KEYS = ("probs", "probs_jpeg95", "image_labels", "sources", "paths")


def write_run(directory: Path, pred: dict, fields: dict) -> dict:
    """Keep one run's held-out scores (``scores.npz``) and figures (``result.json``)."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(directory / "scores.npz", **{k: np.asarray(pred[k]) for k in SCORE_KEYS})
    result = {**fields, "rules": {rule: fold_figures(pred, rule) for rule in SCORE_RULES}}
    (directory / "result.json").write_text(json.dumps(result, indent=2))
    log.info("%s %s seed %d: %s", result["name"], result["fold"], result["seed"], json.dumps(result["rules"]["max"]))
    return result


def ensemble_fold(name: str, members: Sequence[str], seeds: Sequence[int], fold: str, out_dir: Path) -> dict:
    """Score one fold by the mean region probabilities of finished runs (every seed of every
    member row), as a teacher made of them would (``model.ensemble``): a row with seed 0 only.
    The runs must have scored the same held-out images."""
    runs = [run_dir(out_dir, m, fold, s) for m in members for s in seeds]
    missing = [str(r) for r in runs if not (r / "scores.npz").is_file()]
    if missing:
        raise FileNotFoundError(f"no held-out scores (scores.npz) in {', '.join(missing)}: run those folds first")
    loaded = [dict(np.load(r / "scores.npz")) for r in runs]
    first, paths = loaded[0], loaded[0]["paths"].tolist()
    index = []  # per run, the rows of the first run's images in their order
    for r, scores in zip(runs, loaded):
        row_of = {p: i for i, p in enumerate(scores["paths"].tolist())}
        if row_of.keys() != set(paths):
            raise ValueError(f"{r} scored other held-out images than {runs[0]}: an ensemble needs the same ones")
        index.append([row_of[p] for p in paths])
    pred = {k: first[k] for k in ("image_labels", "sources", "paths")}
    for key in ("probs", "probs_jpeg95"):
        pred[key] = np.mean([s[key][i] for s, i in zip(loaded, index)], axis=0)
    return write_run(run_dir(out_dir, name, fold, 0), pred,
                     {"name": name, "recipe": "ensemble", "settings": {"members": list(members), "seeds": list(seeds)},
                      "fold": fold, "seed": 0, "teacher": None, "train_seconds": 0.0})


def as_dirs(out_dirs: Path | str | Sequence[Path | str]) -> list[Path]:
    return [Path(out_dirs)] if isinstance(out_dirs, (str, Path)) else [Path(d) for d in out_dirs]


def load_results(out_dirs: Path | str | Sequence[Path | str]) -> list[dict]:
    """Every run's ``result.json`` under one or several run directories. A run (name, fold,
    seed) found under several is taken from the last one (archives of earlier sessions first,
    the newest last), so a rerun replaces the run it repeats."""
    runs: dict[tuple, dict] = {}
    for out_dir in as_dirs(out_dirs):
        for path in sorted(out_dir.glob("*/*/result.json")):
            result = json.loads(path.read_text())
            runs[(result["name"], result["fold"], result["seed"])] = result
    return list(runs.values())


def find_run(out_dirs: Sequence[Path], name: str, fold: str, seed: int) -> Path | None:
    """The directory of a run in the last of ``out_dirs`` that has it (as ``load_results``)."""
    for out_dir in reversed(out_dirs):
        if (run_dir(out_dir, name, fold, seed) / "result.json").is_file():
            return run_dir(out_dir, name, fold, seed)
    return None


METRICS = ("ap", "reject@r95", "recall@rej90", "jpeg95_flips")


def summarise(results: Sequence[dict], rule: str = "max") -> dict:
    """Per name: per fold the mean of each metric over seeds; over the source folds (not dev)
    the mean and the spread (half the range over seeds of the per-seed mean over folds)."""
    out: dict = {}
    for r in results:
        row = out.setdefault(r["name"], {"folds": {}, "seeds": {}, "recipe": r["recipe"], "settings": r["settings"]})
        row["folds"].setdefault(r["fold"], []).append(r["rules"][rule])
        if r["fold"] != DEV:
            row["seeds"].setdefault(r["seed"], {})[r["fold"]] = r["rules"][rule]
    for row in out.values():
        row["fold_means"] = {fold: {m: float(np.mean([f[m] for f in figs])) for m in METRICS} | {"n_seeds": len(figs)}
                             for fold, figs in row["folds"].items()}
        source_folds = sorted({f for seed in row["seeds"].values() for f in seed})
        complete = [seed for seed in row["seeds"].values() if set(seed) == set(source_folds)]
        per_seed = {m: [float(np.mean([seed[f][m] for f in source_folds])) for seed in complete] for m in METRICS}
        row["source_folds"] = source_folds
        row["mean"] = {m: float(np.mean(v)) if v else None for m, v in per_seed.items()}
        row["spread"] = {m: half_range(v) if len(v) > 1 else None for m, v in per_seed.items()}
        row["n_complete_seeds"] = len(complete)
        row["complete_seeds"] = sorted(seed for seed, folds in row["seeds"].items() if set(folds) == set(source_folds))
    return out


def add_pooled(summary: dict, out_dirs: Path | str | Sequence[Path | str], rule: str = "max") -> dict:
    """``summary`` with each row's pooled out-of-fold figures (mean over its complete seeds whose
    held-out scores are kept: an archive of ``result.json`` files alone has none)."""
    out_dirs = as_dirs(out_dirs)
    for name, row in summary.items():
        figs = []
        for seed in row["complete_seeds"]:
            dirs = [find_run(out_dirs, name, fold, seed) for fold in row["source_folds"]]
            if all(d is not None and (d / "scores.npz").is_file() for d in dirs):
                figs.append(pooled_figures(dirs, rule))
        row["pooled"] = {k: float(np.mean([f[k] for f in figs])) for k in figs[0]} if figs else None
    return summary


def pooled_figures(fold_runs: Sequence[Path], rule: str = "max") -> dict:
    """Figures of the out-of-fold scores of one seed pooled over its runs of the source folds
    (they hold out every collection once, so together they score every image by a model that
    did not train on its collection): like one model meeting all the collections at once, with
    one threshold for all, which per-fold figures do not show."""
    probs, labels = [], []
    for directory in fold_runs:
        scores = np.load(Path(directory) / "scores.npz")
        probs.append(scores["probs"])
        labels.append(scores["image_labels"])
    scores, labels = image_score(np.concatenate(probs), rule), np.concatenate(labels)
    threshold, rejection = metrics.rejection_at_recall(scores, labels, TARGET_RECALL)
    return {"ap": metrics.average_precision(scores, labels), "reject@r95": rejection, "thr@r95": threshold}


def collection_figures(out_dir: Path, name: str, folds: Sequence[str] | None = None, rule: str = "max") -> dict:
    """Per held-out collection of row ``name`` (mean over the seeds run): its text and non-text
    images, and the share of each on the right side of its fold's recall-0.95 threshold
    (recall of the text, rejection of the non-text): which collections a fold's figure hides."""
    per: dict = {}
    for path in sorted((Path(out_dir) / name).glob("*/result.json")):
        result = json.loads(path.read_text())
        if result["fold"] == DEV or (folds and result["fold"] not in folds) or not (path.parent / "scores.npz").is_file():
            continue  # an archived run (result.json alone) has no per-image scores
        scores = np.load(path.parent / "scores.npz")
        values = image_score(scores["probs"], rule)
        labels = scores["image_labels"].astype(bool)
        collections = np.asarray([collection_of(str(s)) for s in scores["sources"]])
        threshold = result["rules"][rule]["thr@r95"]
        for c in np.unique(collections):
            mine = collections == c
            entry = per.setdefault(str(c), {"fold": result["fold"], "recall": [], "rejection": []})
            entry["n_text"], entry["n_non_text"] = int((mine & labels).sum()), int((mine & ~labels).sum())
            if entry["n_text"]:
                entry["recall"].append(float((values[mine & labels] >= threshold).mean()))
            if entry["n_non_text"]:
                entry["rejection"].append(float((values[mine & ~labels] < threshold).mean()))
    return {c: {**e, "recall": float(np.mean(e["recall"])) if e["recall"] else None,
                "rejection": float(np.mean(e["rejection"])) if e["rejection"] else None, "n_seeds": len(
                    e["recall"] or e["rejection"])} for c, e in per.items()}


def collections_table(figures: dict[str, dict]) -> str:
    """``collection_figures`` of several rows side by side: rejection / recall per collection."""
    names = list(figures)
    collections = sorted({c for f in figures.values() for c in f}, key=lambda c: (
        next(f[c]["fold"] for f in figures.values() if c in f), c))
    head = ["collection", "fold", "text / non-text"] + [f"{n}: rejection / recall" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for c in collections:
        first = next(f[c] for f in figures.values() if c in f)
        cells = [c, first["fold"], f"{first['n_text']} / {first['n_non_text']}"]
        cells += [f"{fmt(f[c]['rejection'])} / {fmt(f[c]['recall'])}" if c in f else "-" for f in figures.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(row: dict, base: dict, metric: str = "reject@r95") -> str:
    """The project's rule for ranking recipes: ``row`` beats ``base`` only when its mean over the
    same source folds is ahead by more than the larger of the two seed spreads (each row with
    at least two complete seeds); behind by more is a loss, anything else is level."""
    if row["source_folds"] != base["source_folds"]:
        return "other folds"
    if min(row["n_complete_seeds"], base["n_complete_seeds"]) < 2:
        return "needs 2 seeds"
    return spread_rule(row["mean"][metric], row["spread"][metric], base["mean"][metric], base["spread"][metric])


def half_range(values: Sequence[float]) -> float:
    """A recipe's seed spread: half the range of its per-seed figures."""
    return float((max(values) - min(values)) / 2)


def spread_rule(mean: float, spread: float, base_mean: float, base_spread: float) -> str:
    """``mean`` against ``base_mean``: a win only by more than the larger of the two seed
    spreads (half the range over seeds), a loss only by more, level otherwise."""
    diff, margin = mean - base_mean, max(spread, base_spread)
    word = "win" if diff > margin else "loss" if diff < -margin else "level"
    return f"{diff:+.3f} {word} (spread {margin:.3f})"


def markdown_table(summary: dict, names: Sequence[str] | None = None, baseline: str | None = None) -> str:
    """One row per recipe: the mean over source folds (+- spread over seeds), then each fold;
    with ``baseline``, each row's ``verdict`` against it on rejection at recall 0.95."""
    names = list(names or summary)
    folds = sorted({f for n in names for f in summary[n]["fold_means"] if f != DEV})
    head = ["recipe", "seeds", "AP", "reject@r95", "recall@rej90", "JPEG q95 flips", "pooled out-of-fold: AP / rej@r95"]
    head += [f"vs {baseline}: rej@r95"] if baseline else []
    head += [f"{f}: AP / rej@r95" for f in folds] + ["dev: AP / rej@r95"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pm(row, m):
        mean, spread = row["mean"][m], row["spread"][m]
        if mean is None:
            return "-"
        return f"{mean:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")

    def fold_cell(row, fold):
        f = row["fold_means"].get(fold)
        return f"{f['ap']:.3f} / {f['reject@r95']:.3f}" if f else "-"

    for n in names:
        row = summary[n]
        pooled = row.get("pooled")
        cells = [n, str(row["n_complete_seeds"]), *(pm(row, m) for m in METRICS),
                 f"{pooled['ap']:.3f} / {pooled['reject@r95']:.3f}" if pooled else "-"]
        cells += [verdict(row, summary[baseline]) if n != baseline else "baseline"] if baseline else []
        cells += [fold_cell(row, f) for f in folds] + [fold_cell(row, DEV)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="train and score the folds of one recipe")
    run_p.add_argument("--name", required=True, help="the row's name (its folder under --out_dir)")
    run_p.add_argument("--recipe", choices=sorted(RECIPES), default="reference")
    run_p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="changes to the recipe (training.train_student option names)")
    run_p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    run_p.add_argument("--folds", nargs="+", default=list(DEFAULT_FOLDS))
    run_p.add_argument("--teacher", nargs="+", default=[], metavar="TEMPLATE",
                       help="teacher checkpoint of each run, {fold} and {seed} substituted "
                            "(e.g. runs/crossval/reference/{fold}-s{seed}/student.pt); several: their ensemble "
                            "(e.g. the students of seeds 0, 1, 2: .../{fold}-s0/student.pt .../{fold}-s1/student.pt ...)")
    run_p.add_argument("--init", default=None, metavar="TEMPLATE",
                       help="checkpoint each run starts from (a fresh schedule), {fold} and {seed} substituted: "
                            "a two-stage recipe's second stage, e.g. runs/crossval/kdTuABpre/{fold}-s{seed}/student.pt")
    run_p.add_argument("--num_threads", type=int, default=2)
    run_p.add_argument("--num_workers", type=int, default=1)
    run_p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                       help="more training.train_student flags, passed as they are (last on the line)")
    table_p = sub.add_parser("table", help="the results so far as a markdown table")
    table_p.add_argument("--names", nargs="*", default=None)
    table_p.add_argument("--rule", choices=tuple(SCORE_RULES), default="max")
    table_p.add_argument("--folds", nargs="*", default=None,
                         help="only these folds (the mean and pooled figures over them; default: every fold run)")
    table_p.add_argument("--baseline", default=None, metavar="NAME",
                         help="a row to rank the others against: win / level / loss by the seed-spread rule")
    ens_p = sub.add_parser("ensemble", help="a row scored by the mean region probabilities of finished runs "
                                              "(what an ensemble teacher of them predicts)")
    ens_p.add_argument("--name", required=True)
    ens_p.add_argument("--members", nargs="+", required=True, help="rows whose runs are averaged")
    ens_p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ens_p.add_argument("--folds", nargs="+", default=list(DEFAULT_FOLDS))
    coll_p = sub.add_parser("collections", help="per held-out collection: rejection and recall at the fold's "
                                                  "recall-0.95 threshold, rows side by side")
    coll_p.add_argument("--names", nargs="+", required=True)
    coll_p.add_argument("--rule", choices=tuple(SCORE_RULES), default="max")
    coll_p.add_argument("--folds", nargs="*", default=None)
    for p in (run_p, ens_p, coll_p):
        p.add_argument("--out_dir", default="runs/crossval")
    table_p.add_argument("--out_dir", nargs="+", default=["runs/crossval"],
                         help="one or several run directories (e.g. the archives under docs/crossval, then "
                              "runs/crossval); a run found in several is taken from the last")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "run":
        settings = parse_settings(args.set)
        runs = [(fold, seed) for seed in args.seeds for fold in args.folds]
        # every teacher and starting point there before hours of training, not at the third fold
        needed = [(t, "teacher") for t in args.teacher] + ([(args.init, "init")] if args.init else [])
        for fold, seed in runs:
            if not (run_dir(Path(args.out_dir), args.name, fold, seed) / "result.json").is_file():
                for template, flag in needed:
                    run_checkpoint(template, fold, seed, flag)
        for fold, seed in runs:
            run_fold(args.name, args.recipe, settings, fold, seed, Path(args.out_dir), args.num_threads,
                     args.num_workers, args.extra, args.teacher, args.init)
    if args.command == "ensemble":
        for fold in args.folds:
            ensemble_fold(args.name, args.members, args.seeds, fold, Path(args.out_dir))
    rule = getattr(args, "rule", "max")
    if args.command == "collections":
        figures = {n: collection_figures(Path(args.out_dir), n, args.folds, rule) for n in args.names}
        empty = [n for n, f in figures.items() if not f]
        if empty:
            parser.error(f"no held-out scores (scores.npz) of {', '.join(empty)} under {args.out_dir}"
                         f"{' for folds ' + ' '.join(args.folds) if args.folds else ''}: run those folds first")
        print(collections_table(figures))
        return
    results = load_results(args.out_dir)
    if args.command == "table" and args.folds:
        results = [r for r in results if r["fold"] in set(args.folds) | {DEV}]
    summary = add_pooled(summarise(results, rule), args.out_dir, rule)
    names = getattr(args, "names", None) or ([args.name] if args.command in ("run", "ensemble") else None)
    baseline = getattr(args, "baseline", None)
    if baseline and baseline not in summary:
        parser.error(f"--baseline {baseline}: no results of that name under {' '.join(map(str, args.out_dir))}")
    names = [n for n in (names or summary) if n in summary]
    if baseline and baseline not in names:
        names.insert(0, baseline)
    print(markdown_table(summary, names, baseline))


if __name__ == "__main__":
    main()
