"""Compare candidate students on labelled images of collections none of them trained on, and
pick the one that generalises best.

    python -m training.select runs/crossval/ROW/dev-s0/student.pt runs/crossval/ROW/dev-s1/student.pt ... \\
        --root /work/pool-unl --split all [--out runs/select]

Students of one recipe that differ only in their seed can differ a lot on unseen collections
(MODEL.md, session 21: on the 10,127 pool images, non-text rejected at recall 0.95 from 0.78 to
0.85 between two seeds of the shipped recipe) while dev (104 non-text images) barely tells
them apart. This scores every candidate on the selection set, each batch decoded once for all
of them, and reports per candidate:

- its operating threshold, set the way the product's is: the highest with recall >=
  ``--threshold_recall`` (0.96) on ``--threshold_split`` (dev) of the shared data, and dev's
  F and non-text rejection there;
- on the selection set: AP, recall and non-text rejection at that threshold, non-text
  rejection at the threshold for recall ``--target_recall`` (0.95) set on the selection set
  itself (the ranking figure: free of the dev threshold's noise), and that rejection per
  collection;
- whether ranking there means anything: the rank correlation, over the candidates, between
  the mean rejection of one half of the non-text collections and of the other half (near 0:
  the differences are collection-specific noise; near 1: some students are better overall).

``--ensemble NAME=A,B,C`` also scores the mean of candidates' region probabilities (what a
distillation teacher made of them would pass on). The pick is the (single) candidate with the highest rejection at recall ``--target_recall`` on the
selection set. Its figures there are no longer unseen figures: report them as selection
figures. ``<out>/select.md`` holds the table, ``<out>/select.json`` the figures,
``<out>/<name>_scores.npz`` each candidate's per-image scores. ``--cache DIR`` keeps every
candidate's region probabilities (``training.score_cache``): run again with more candidates,
only the new ones are scored.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from model.preprocessing import preprocess_from_meta
from model.registry import load_checkpoint
from model.regions import DEFAULT_SCORE_RULE, SCORE_RULES, image_score
from training import metrics
from training.config import DataConfig, default_data_root
from training.crossval import half_range, spread_rule
from training.data import batches
from training.engine import predict_many
from training.evaluate import ALL_SPLITS, split_dataset
from training.score_cache import ScoreCache, in_order

log = logging.getLogger("training.select")


def scores_file(out: str | Path, name: str) -> Path:
    """Where ``main`` keeps a candidate's per-image scores in its ``--out`` folder."""
    return Path(out) / f"{name.replace('/', '_')}_scores.npz"


def candidate_path(spec: str) -> str:
    """The checkpoint path of a ``PATH`` or ``NAME=PATH`` candidate."""
    return spec.split("=", 1)[1] if "=" in spec else spec


def candidate_names(specs: Sequence[str]) -> list[str]:
    """Short unique names: ``NAME=PATH`` keeps NAME; otherwise the parts of the paths that
    differ (``runs/crossval/ROW/dev-s0/student.pt`` and ``.../dev-s1/student.pt`` -> ``dev-s0``,
    ``dev-s1``; a single path: its folder and file stem)."""
    given = [spec.split("=", 1)[0] if "=" in spec else None for spec in specs]
    parts = [Path(candidate_path(spec)).parts for spec in specs]
    lead = 0
    while all(len(q) > lead + 1 for q in parts) and len({q[lead] for q in parts}) == 1 and len(parts) > 1:
        lead += 1
    trail = 0
    while all(len(q) > lead + trail + 1 for q in parts) and len({q[-1 - trail] for q in parts}) == 1 and len(parts) > 1:
        trail += 1
    names = [name or ("/".join(q[lead:len(q) - trail]) if len(parts) > 1 else f"{Path(*q).parent.name}/{Path(*q).stem}")
             for name, q in zip(given, parts)]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names are not unique: {names}; name them NAME=PATH")
    return names


def score_all(models: dict[str, torch.nn.Module], data_cfg: DataConfig, split: str, preprocess,
              batch_size: int, score_rule: str, ensembles: dict[str, Sequence[str]] | None = None,
              cache: ScoreCache | None = None, checkpoints: dict[str, str] | None = None) -> dict:
    """Image scores of every model on ``split``, the images decoded once, and of every
    ensemble (name -> member names: the mean of the members' region probabilities). With
    ``cache`` (and each model's checkpoint file in ``checkpoints``), models already scored on
    these images are read from it and only the others run; their scores are added to it."""
    dataset = split_dataset(data_cfg, split, preprocess)
    paths = [record.path for record in dataset.records]
    keys = {name: cache.key(checkpoints[name], data_cfg, split, preprocess) for name in models} if cache else {}
    found = {name: entry for name, key in keys.items() if (entry := cache.load(key, paths)) is not None}
    todo = {name: model for name, model in models.items() if name not in found}
    if found:
        log.info("%s: %d of %d students' scores read from %s", split, len(found), len(models), cache.directory)
    if todo:
        with tqdm(total=len(dataset), desc=f"{split} x {len(todo)} students", unit="img", file=sys.stderr) as bar:
            def counted():
                for batch in batches(dataset, dataset.items(), batch_size):
                    yield batch
                    bar.update(len(batch.paths))
            pred = predict_many(todo, counted())
        for name in todo:  # rows in the labels file's order, whatever order the batches came in
            found[name] = in_order({"probs": pred["probs"][name], "image_labels": pred["image_labels"].astype(int),
                                    "sources": np.asarray(pred["sources"]), "paths": np.asarray(pred["paths"])}, paths)
            if cache:
                cache.save(keys[name], **found[name])
    first = found[next(iter(models))]
    probs = {name: found[name]["probs"] for name in models}
    for name, members in (ensembles or {}).items():
        probs[name] = np.mean([probs[m] for m in members], axis=0)
    return {"labels": first["image_labels"].astype(int), "sources": np.asarray(first["sources"]),
            "paths": np.asarray(first["paths"]),
            "scores": {name: image_score(p, score_rule) for name, p in probs.items()}}


def nontext_rejection_by_source(scores: np.ndarray, labels: np.ndarray, sources: np.ndarray,
                                threshold: float) -> dict[str, float]:
    """Share of each collection's non-text images scored below ``threshold``."""
    return {src: float((scores[(labels == 0) & (sources == src)] < threshold).mean())
            for src in sorted(set(sources[labels == 0]))}


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def split_half_consistency(by_source: dict[str, dict[str, float]]) -> float | None:
    """Rank correlation over candidates between the mean rejection of alternate halves of the
    collections (sorted by name); None with fewer than 3 candidates or 2 collections."""
    names = list(by_source)
    sources = sorted(set.intersection(*(set(v) for v in by_source.values()))) if names else []
    if len(names) < 3 or len(sources) < 2:
        return None
    half = [[np.mean([by_source[n][s] for s in sources[k::2]]) for n in names] for k in (0, 1)]
    return rank_correlation(*half)


def recipes_of(names: Sequence[str], given: dict[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """Candidates grouped by recipe: ``given`` (recipe -> candidate names), else by name with
    the seed suffix dropped (``synth-s0``, ``synth-s1`` -> ``synth``); only groups of >= 2."""
    if given:
        unknown = sorted({m for members in given.values() for m in members} - set(names))
        if unknown:
            raise ValueError(f"--recipe members must be candidates ({', '.join(names)}); unknown: {unknown}")
        return {recipe: list(members) for recipe, members in given.items()}
    groups: dict[str, list[str]] = {}
    for name in names:
        match = re.fullmatch(r"(.+)-s\d+", name)
        if match:
            groups.setdefault(match.group(1), []).append(name)
    return {recipe: members for recipe, members in groups.items() if len(members) >= 2}


def check_baseline(baseline: str, recipes: dict) -> None:
    if baseline not in recipes:
        raise ValueError(f"baseline {baseline!r} is not a recipe of >= 2 candidates ({', '.join(recipes) or 'none'})")


def recipe_summary(cands: dict, recipes: dict[str, Sequence[str]], baseline: str | None = None) -> dict:
    """Per recipe, over its candidates (seeds): mean and spread (half the range) of the
    rejection at the target recall and of AP; with ``baseline`` (a recipe), each recipe's
    verdict against it by the project's seed-spread rule (``crossval.spread_rule``)."""
    out = {}
    for recipe, members in recipes.items():
        rej = [cands[m]["rejection_here"] for m in members]
        ap = [cands[m]["ap"] for m in members]
        out[recipe] = {"members": list(members), "n": len(members),
                       "rejection_here": float(np.mean(rej)), "rejection_spread": half_range(rej),
                       "ap": float(np.mean(ap)), "ap_spread": half_range(ap)}
    if baseline is not None:
        check_baseline(baseline, out)
        base = out[baseline]
        for recipe, row in out.items():
            row["verdict"] = None if recipe == baseline else spread_rule(
                row["rejection_here"], row["rejection_spread"], base["rejection_here"], base["rejection_spread"])
    return out


def select(checkpoints: Sequence[str], data_cfg: DataConfig, split: str = ALL_SPLITS,
           threshold_cfg: DataConfig | None = None, threshold_split: str = "dev", threshold_recall: float = 0.96,
           target_recall: float = 0.95, score_rule: str = DEFAULT_SCORE_RULE, batch_size: int = 32,
           ensembles: dict[str, Sequence[str]] | None = None, cache: ScoreCache | None = None,
           recipes: dict[str, Sequence[str]] | None = None, baseline: str | None = None) -> dict:
    """Figures of every candidate (see the module's docstring) and the pick; ``ensembles``
    (name -> candidate names) are scored too, as the mean of their members' region
    probabilities (what a distillation teacher made of them would pass on), never picked.
    ``cache``: candidates scored before on the same images are read from it (``ScoreCache``).
    ``recipes`` (recipe -> candidate names; default: grouped by the ``-sN`` seed suffix) get a
    mean and spread over their seeds, and with ``baseline`` a verdict against that recipe."""
    names = candidate_names(checkpoints)
    groups = recipes_of(names, recipes)
    if baseline is not None:  # before any image is scored
        check_baseline(baseline, groups)
    ensembles = dict(ensembles or {})
    for name, members in ensembles.items():
        unknown = [m for m in members if m not in names]
        if unknown or not members or name in names:
            raise ValueError(f"ensemble {name!r}: members must be candidates ({', '.join(names)}) and its name new; "
                             f"unknown: {unknown}")
    models, preprocess = {}, None
    for name, spec in zip(names, checkpoints):
        model, meta = load_checkpoint(candidate_path(spec))
        pre = preprocess_from_meta(meta)
        if preprocess is not None and pre != preprocess:
            raise ValueError(f"{name} reads images at another input shape ({pre}) than the first candidate "
                             f"({preprocess}): compare candidates of one shape at a time")
        models[name], preprocess = model.to(memory_format=torch.channels_last), pre
    threshold_cfg = threshold_cfg or DataConfig(root=default_data_root())
    files = {name: candidate_path(spec) for name, spec in zip(names, checkpoints)}
    dev = score_all(models, threshold_cfg, threshold_split, preprocess, batch_size, score_rule, ensembles, cache, files)
    held = score_all(models, data_cfg, split, preprocess, batch_size, score_rule, ensembles, cache, files)
    out: dict = {"split": split, "root": data_cfg.root, "n": int(len(held["labels"])),
                 "n_text": int(held["labels"].sum()), "threshold_split": threshold_split,
                 "threshold_recall": threshold_recall, "target_recall": target_recall, "score_rule": score_rule,
                 "candidates": {}}
    for name in [*names, *ensembles]:
        d, h = dev["scores"][name], held["scores"][name]
        thr = metrics.threshold_for_recall(d, dev["labels"], threshold_recall)
        here = metrics.threshold_for_recall(h, held["labels"], target_recall)
        at_dev, at_here = metrics.prf_at(h, held["labels"], thr), metrics.prf_at(h, held["labels"], here)
        dev_at = metrics.prf_at(d, dev["labels"], thr)
        out["candidates"][name] = {
            "checkpoint": dict(zip(names, checkpoints)).get(name),
            "members": list(ensembles[name]) if name in ensembles else None, "threshold": thr,
            "dev": {"f1": dev_at["f1"], "recall": dev_at["recall"], "rejection": dev_at["rejection"],
                    "ap": metrics.average_precision(d, dev["labels"])},
            "ap": metrics.average_precision(h, held["labels"]),
            "recall_at_threshold": at_dev["recall"], "rejection_at_threshold": at_dev["rejection"],
            "threshold_here": here, "rejection_here": at_here["rejection"],
            "rejection_by_source": nontext_rejection_by_source(h, held["labels"], held["sources"], here),
        }
    cands = out["candidates"]
    out["consistency"] = split_half_consistency({n: cands[n]["rejection_by_source"] for n in names})
    out["recipes"] = recipe_summary(cands, groups, baseline)
    out["pick"] = max(names, key=lambda n: (cands[n]["rejection_here"], cands[n]["ap"]))
    out["scores"] = held
    return out


def markdown(result: dict) -> str:
    cands = result["candidates"]
    sources = sorted(set.intersection(*(set(c["rejection_by_source"]) for c in cands.values())))
    r, t = result["threshold_recall"], result["target_recall"]
    lines = [f"Selection set: {result['root']} ({result['split']}: {result['n']} images, {result['n_text']} text); "
             f"thresholds for recall >= {r} on {result['threshold_split']}; ranked by non-text rejected at recall "
             f">= {t} set on the selection set (per collection at that threshold).", "",
             f"| candidate | thr | {result['threshold_split']} F / rejection | AP | recall / rejection at thr | "
             f"**rejection at recall {t}** | " + " | ".join(sources) + " |",
             "|---" * (6 + len(sources)) + "|"]
    for name, c in sorted(cands.items(), key=lambda kv: -kv[1]["rejection_here"]):
        mark = " (pick)" if name == result["pick"] else (f" (mean of {len(c['members'])})" if c.get("members") else "")
        lines.append(f"| {name}{mark} | {c['threshold']:.4f} | {c['dev']['f1']:.3f} / {c['dev']['rejection']:.3f} | "
                     f"{c['ap']:.4f} | {c['recall_at_threshold']:.3f} / {c['rejection_at_threshold']:.3f} | "
                     f"**{c['rejection_here']:.3f}** | "
                     + " | ".join(f"{c['rejection_by_source'][s]:.3f}" for s in sources) + " |")
    if result.get("recipes"):
        lines += ["", f"Per recipe, over its seeds (mean ± half the range): rejection at recall {t} on the selection "
                  "set, AP" + (", and against the baseline by the seed-spread rule" if any(
                      r.get("verdict") for r in result["recipes"].values()) else ""), "",
                  "| recipe | seeds | rejection at recall | AP | verdict |", "|---|---|---|---|---|"]
        for recipe, row in sorted(result["recipes"].items(), key=lambda kv: -kv[1]["rejection_here"]):
            lines.append(f"| {recipe} | {row['n']} | {row['rejection_here']:.3f} ± {row['rejection_spread']:.3f} | "
                         f"{row['ap']:.4f} ± {row['ap_spread']:.4f} | {row.get('verdict') or '-'} |")
    cons = result["consistency"]
    lines += ["", "Split-half consistency (rank correlation over candidates of the mean rejection of alternate "
              "halves of the collections): " + ("n/a (needs 3 candidates, 2 collections)" if cons is None
                                                else f"{cons:.2f}")]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="candidate checkpoints (PATH or NAME=PATH)")
    parser.add_argument("--root", required=True, help="labelled images none of the candidates trained on (a pool)")
    parser.add_argument("--labels_file", default="labels.jsonl")
    parser.add_argument("--split", default=ALL_SPLITS)
    parser.add_argument("--threshold_root", default=None, help="data whose --threshold_split sets each threshold "
                                                               "(default: the shared data)")
    parser.add_argument("--threshold_split", default="dev")
    parser.add_argument("--threshold_recall", type=float, default=0.96)
    parser.add_argument("--target_recall", type=float, default=0.95)
    parser.add_argument("--score_rule", choices=tuple(SCORE_RULES), default=DEFAULT_SCORE_RULE)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--ensemble", nargs="*", default=[], metavar="NAME=MEMBER,MEMBER",
                        help="also score the mean of these candidates' region probabilities (not a shippable student)")
    parser.add_argument("--recipe", nargs="*", default=[], metavar="NAME=MEMBER,MEMBER",
                        help="candidates of one recipe (seeds): mean and spread over them (default: candidates "
                             "grouped by their -sN suffix)")
    parser.add_argument("--baseline", default=None, help="a recipe to judge the others against (seed-spread rule)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="keep every candidate's region probabilities here and reuse them: a later run with "
                             "more candidates scores only the new ones (entries keyed by checkpoint and labels "
                             "file content)")
    parser.add_argument("--out", default="runs/select")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.num_threads)
    for flag, specs in (("--ensemble", args.ensemble), ("--recipe", args.recipe)):
        if any("=" not in spec for spec in specs):
            parser.error(f"{flag} takes NAME=MEMBER,MEMBER: got {specs}")
    ensembles, recipes = ({spec.split("=", 1)[0]: spec.split("=", 1)[1].split(",") for spec in specs}
                          for specs in (args.ensemble, args.recipe))
    result = select(args.checkpoints, DataConfig(root=args.root, labels_file=args.labels_file), args.split,
                    DataConfig(root=args.threshold_root or default_data_root()), args.threshold_split,
                    args.threshold_recall, args.target_recall, args.score_rule, args.batch_size, ensembles,
                    ScoreCache(args.cache) if args.cache else None, recipes or None, args.baseline)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    held = result.pop("scores")
    for name, scores in held["scores"].items():
        np.savez_compressed(scores_file(out, name), paths=held["paths"],
                            sources=held["sources"], labels=held["labels"], scores=scores)
    table = markdown(result)
    (out / "select.md").write_text(table + "\n")
    (out / "select.json").write_text(json.dumps(result, indent=2))
    print(table)
    print(f"pick: {result['pick']} ({result['candidates'][result['pick']]['checkpoint']}; ensembles are never picked); wrote {out}/select.md, "
          f"select.json and the per-image scores")
    return result


if __name__ == "__main__":
    main()
