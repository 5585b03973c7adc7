"""The never-seen basis: how recipes are ranked since session 30.

Dev (104 non-text images) and the five source folds cannot rank recipes whose teacher trained on
the pool, so candidates are judged on images no run and no teacher has seen: the evaluation-only
collections (``build --eval_only``: weather, portraits with masks, clothing, benchmark photos) and
the people pool's text (``build --collections utkface flickr8k human-seg grocery-produce``), both
scored by ``training.select`` (one ``--out`` folder per pool, the same candidates in both)::

    python -m training.neverseen runs/selP runs/selN --baseline kdTuP20 \\
        [--recorded kdTuP20=0.466,0.464,0.462,0.449] [--seeds 4] [--out runs/neverseen.md]

Per candidate, the evaluation-only non-text rejected

- at the candidate's own dev threshold (``threshold`` in ``select.json``: the product's rule), with
  that rejection per collection, and
- at the threshold for recall 0.95 on every text image of both pools (the ranking figure; 562
  text images since session 30's audit, free of the dev threshold's noise),

and the recall of that text at the dev threshold. Per recipe (candidate names ``RECIPE-sN``) the
mean +- half the range over seeds, and against ``--baseline`` the project's seed-spread rule
(``training.crossval.spread_rule``). ``--recorded NAME=v,v,..`` adds per-seed ranking figures
measured earlier on the same basis (students no longer on disk) to a recipe's scored seeds, if any; ``--seeds N`` says, for a
recipe with fewer seeds, whether any further seeds could still make it win (``could_still_win``).

A candidate missing from the first folder trained on that pool and is judged on the
evaluation-only text alone. ``--audit TSV`` relabels images a person called non-text
(``training.collections.audit``; pools built before session 30 need it), ``--text_without SRC,..``
leaves those collections' text out of the threshold, and the text-line strips of ocrd-documents
(``linegt/``) are left out unless ``--keep_lines``. ``--bootstrap N`` adds how much of each
candidate's ranking figure, and of its difference from the baseline's first candidate, is the
chance of which images the basis holds (a paired bootstrap over the images, ``bootstrap_noise``).
``--extra_text DIR ..`` adds the text images of further never-seen pools, scored by training.select
for the same candidates (session 35: TrashNet's printed paper and cardboard, ``trashnet-print``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from training import metrics
from training.crossval import half_range, spread_rule
from training.select import scores_file

LINES = "/linegt/"  # ocrd-documents' text-line strips (~800x40 px single printed lines)
FIGURES = ("rej_dev", "rej95", "recall_dev")
RANKING = "rej95"


def kept(z, keep_lines: bool = False) -> np.ndarray:
    """Which rows of a training.select score file to use: all, or all but the text-line strips."""
    return np.ones(len(z["scores"]), bool) if keep_lines else np.char.find(z["paths"].astype(str), LINES) < 0


def recipe_of(name: str) -> str:
    """The recipe of a candidate: the name before -sN (seed) or -bBASE (a base's soup or fine-tune);
    the shipped student of sessions 15-25 (``shipped``) is one of wide104's."""
    if name == "shipped":
        return "wide104"
    m = re.match(r"^(.*)-(s\d+|b(?:shipped|s\d+))$", name)
    return m.group(1) if m else name


def mean_spread(values: Iterable[float]) -> str:
    """"mean ± half the range" of a recipe's per-seed figures (one seed: the figure alone)."""
    v = list(values)
    return f"{np.mean(v):.3f} ± {half_range(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def audited_non_text(path) -> frozenset[str]:
    """The pool paths of the images an audit file (``training.collections.audit``) calls non-text."""
    from training.collections import audit
    from training.collections.manifest import load_manifests
    rows = [r for r in audit.read_audit(path) if r.label == 0]
    manifests = {m.name: m for m in load_manifests(names={r.collection for r in rows})}
    return frozenset(manifests[r.collection].stored_path(r.path) for r in rows)


def load_scores(folder, name: str, keep_lines: bool = True, non_text: frozenset[str] = frozenset()):
    """A candidate's per-image scores, labels, collections and paths from a training.select folder."""
    z = np.load(scores_file(folder, name))
    keep = kept(z, keep_lines)
    labels = np.where(np.isin(z["paths"], list(non_text)), 0, z["labels"])
    return z["scores"][keep], labels[keep], z["sources"][keep], z["paths"][keep].astype(str)


def basis_scores(text_dir, eval_dir, name: str, keep_lines: bool = False, text_without: Sequence[str] = (),
                 non_text: frozenset[str] = frozenset(), extra_text: Sequence = ()) -> dict:
    """A candidate's images on the basis: the evaluation-only pool's (``eval``: scores, labels,
    collections, paths) and, per further folder, that folder's text images (``text``: {folder:
    (scores, paths)}): the text pool's (absent when the candidate trained on that pool, ``seen``)
    and every ``extra_text`` folder's (training.select folders of further never-seen pools, which
    every candidate must have been scored in)."""
    sn, yn, srcn, pn = load_scores(eval_dir, name, non_text=non_text)
    seen = not scores_file(text_dir, name).exists()
    text = {}
    for folder in ([] if seen else [text_dir]) + list(extra_text):
        if not scores_file(folder, name).exists():
            raise ValueError(f"{name} has no scores in {folder}: score every candidate on each --extra_text pool")
        s, y, src, paths = load_scores(folder, name, keep_lines, non_text)
        use = ~np.isin(src, list(text_without)) & (y == 1)
        text[str(folder)] = (s[use], paths[use])
    return {"eval": (sn, yn, srcn, pn), "text": text, "seen": seen}


def basis_text_and_non_text(basis: dict, eval_draw=None, text_draws: dict | None = None):
    """The text scores (every text part, then the evaluation-only pool's text) and the non-text
    scores of ``basis_scores``, optionally resampled: ``eval_draw`` indexes the evaluation-only
    pool's images, ``text_draws`` {folder: indices} each text part."""
    sn, yn = basis["eval"][0], basis["eval"][1]
    if eval_draw is not None:
        sn, yn = sn[eval_draw], yn[eval_draw]
    parts = [s if text_draws is None else s[text_draws[folder]] for folder, (s, _) in basis["text"].items()]
    return np.concatenate(parts + [sn[yn == 1]]), sn[yn == 0]


def threshold95(text: np.ndarray, neg: np.ndarray) -> float:
    """The threshold that keeps 95 % of ``text`` (``metrics.threshold_for_recall`` over text and non-text)."""
    return metrics.threshold_for_recall(np.concatenate([text, neg]),
                                        np.concatenate([np.ones(len(text)), np.zeros(len(neg))]), 0.95)


def candidate_rows(text_dir, eval_dir, keep_lines: bool = False, text_without: Sequence[str] = (),
                   non_text: frozenset[str] = frozenset(), extra_text: Sequence = ()) -> list[dict]:
    """One row per candidate of ``eval_dir/select.json`` (see the module's docstring)."""
    cands = json.loads((Path(eval_dir) / "select.json").read_text())["candidates"]
    rows = []
    for name, cand in cands.items():
        basis = basis_scores(text_dir, eval_dir, name, keep_lines, text_without, non_text, extra_text)
        sn, yn, srcn, _ = basis["eval"]
        text, neg = basis_text_and_non_text(basis)
        if not len(text) or not len(neg):
            raise ValueError(f"{name}: the basis needs text and non-text images ({len(text)} / {len(neg)})")
        t95 = threshold95(text, neg)
        t_dev = cand["threshold"]
        rows.append({"name": name, "recipe": recipe_of(name), "text_pool_seen": basis["seen"], "n_text": int(len(text)),
                     "n_non_text": int(len(neg)), "threshold": float(t_dev), "threshold95": float(t95),
                     "rej_dev": float((neg < t_dev).mean()), "rej95": float((neg < t95).mean()),
                     "recall_dev": float((text >= t_dev).mean()),
                     "by_source": {s: float((sn[(yn == 0) & (srcn == s)] < t_dev).mean())
                                   for s in sorted(set(srcn[yn == 0].tolist()))}})
    return rows


def bootstrap_noise(text_dir, eval_dir, names: Sequence[str], reference: str, resamples: int = 400, seed: int = 0,
                    keep_lines: bool = False, text_without: Sequence[str] = (),
                    non_text: frozenset[str] = frozenset(), keep_draws: bool = False,
                    extra_text: Sequence = ()) -> dict[str, dict]:
    """How much of the ranking figure is the images' chance: a paired bootstrap over the basis.

    Each resample draws the evaluation-only pool's images and the text images of the text pools
    with replacement, the same draw for every candidate (their score files list the same images; one
    that trained on the text pool has no part there), and recomputes each candidate's ``rej95``
    (on the full basis: the rows' figure). Per candidate: ``sd`` over the resamples, and against
    ``reference`` the difference on the full basis (``diff``) and its ``diff_sd`` over the
    resamples: two students whose difference is within about two ``diff_sd`` cannot be told apart
    on these images, however many seeds each has. ``keep_draws`` adds each candidate's per-resample
    figures (``draws``), from which the noise of any mean over candidates follows."""
    if resamples < 2:
        raise ValueError(f"resamples {resamples} must be at least 2")
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not a candidate here ({', '.join(names)})")
    bases = {n: basis_scores(text_dir, eval_dir, n, keep_lines, text_without, non_text, extra_text) for n in names}
    eval_paths = bases[reference]["eval"][3]
    text_paths: dict[str, np.ndarray] = {}  # per text part, the images every candidate scored there lists
    for name, b in bases.items():
        if not np.array_equal(b["eval"][3], eval_paths) or any(
                not np.array_equal(paths, text_paths.setdefault(folder, paths)) for folder, (_, paths) in b["text"].items()):
            raise ValueError(f"{name} and {reference} were scored on different images: "
                             "bootstrap needs one training.select run per pool")
    # one index array over all text parts in turn, split per part: with every part present this is
    # one draw over the concatenated text
    layout, start = {}, 0
    for folder, paths in text_paths.items():
        layout[folder] = (start, len(paths))
        start += len(paths)
    n_eval = len(eval_paths)

    def rej95(b, eval_draw, text_draw):
        text_draws = {f: text_draw[(text_draw >= s) & (text_draw < s + n)] - s for f, (s, n) in layout.items()}
        text, neg = basis_text_and_non_text(b, eval_draw, text_draws)
        return float((neg < threshold95(text, neg)).mean())

    rng = np.random.default_rng(seed)
    full = {n: rej95(b, np.arange(n_eval), np.arange(start)) for n, b in bases.items()}
    draws = {n: [] for n in names}
    for _ in range(resamples):
        eval_draw = rng.integers(0, n_eval, n_eval)
        text_draw = rng.integers(0, start, start) if start else np.arange(0)
        for n, b in bases.items():
            draws[n].append(rej95(b, eval_draw, text_draw))
    ref_draws = np.array(draws[reference])
    return {n: {"rej95": full[n], "sd": float(np.std(draws[n], ddof=1)), "diff": full[n] - full[reference],
                "diff_sd": float(np.std(np.array(draws[n]) - ref_draws, ddof=1)),
                **({"draws": draws[n]} if keep_draws else {})} for n in names}


def recipe_bootstrap(noise: dict[str, dict], rows: Sequence[dict], baseline: str) -> dict[str, dict]:
    """Per recipe, from ``bootstrap_noise(..., keep_draws=True)``: the mean of its scored seeds'
    figures minus the mean of ``baseline``'s scored seeds' (``diff``), and that difference's sd
    over the same resamples (``sd``): the part of a recipe comparison that is the images' chance,
    however many seeds each recipe has. Seeds recorded without per-image scores cannot take part."""
    members: dict[str, list[str]] = {}
    for r in rows:
        members.setdefault(r["recipe"], []).append(r["name"])
    if baseline not in members:
        raise ValueError(f"baseline {baseline!r} has no scored candidate to bootstrap against")

    def mean_draws(recipe):
        return np.mean([noise[n]["draws"] for n in members[recipe]], axis=0), np.mean(
            [noise[n]["rej95"] for n in members[recipe]])

    base_draws, base_full = mean_draws(baseline)
    out = {}
    for recipe in members:
        if recipe != baseline:
            draws, full = mean_draws(recipe)
            out[recipe] = {"seeds": len(members[recipe]), "baseline_seeds": len(members[baseline]),
                           "diff": float(full - base_full), "sd": float(np.std(draws - base_draws, ddof=1))}
    return out


def bootstrap_markdown(noise: dict[str, dict], reference: str, resamples: int,
                       recipes: dict[str, dict] | None = None, baseline: str | None = None) -> str:
    lines = [f"Measurement noise of the ranking figure (paired bootstrap over the images, {resamples} resamples; "
             f"against {reference}):", "",
             "| candidate | rejected at recall 0.95 | bootstrap sd | difference | sd of the difference |",
             "|---|---|---|---|---|"]
    lines += [f"| {n} | {v['rej95']:.3f} | {v['sd']:.3f} | {v['diff']:+.3f} | {v['diff_sd']:.3f} |"
              for n, v in noise.items()]
    if recipes:
        lines += ["", f"Per recipe against {baseline}, the mean over each side's scored seeds (the same resamples):", "",
                  "| recipe | scored seeds | difference of the means | its bootstrap sd | beyond two sds |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {v['seeds']} against {v['baseline_seeds']} | {v['diff']:+.3f} | {v['sd']:.3f} | "
                  f"{'yes' if abs(v['diff']) > 2 * v['sd'] else 'no'} |" for n, v in recipes.items()]
    return "\n".join(lines)


def could_still_win(seeds: Sequence[float], base: Sequence[float], n_seeds: int, grid: int = 1001) -> bool:
    """Whether ``n_seeds - len(seeds)`` more seeds could make a recipe with per-seed ranking figures
    ``seeds`` win against ``base`` by the seed-spread rule. For any best value M of the new seeds,
    giving all of them M raises the mean most without widening the range further, so it is enough
    to try every M (on a grid over [0, 1])."""
    base_mean, base_spread = float(np.mean(base)), half_range(base)

    def wins(values):  # crossval.spread_rule's "win"
        return np.mean(values) - base_mean > max(half_range(values), base_spread)

    more = n_seeds - len(seeds)
    if more <= 0:
        return bool(wins(seeds))
    return any(wins(list(seeds) + [float(m)] * more) for m in np.linspace(0.0, 1.0, grid))


def recipe_rows(rows: Sequence[dict], recorded: dict[str, Sequence[float]] | None = None,
                baseline: str | None = None, n_seeds: int | None = None) -> dict[str, dict]:
    """Per recipe: its seeds' figures (``FIGURES``; recorded seeds have the ranking figure only),
    and against ``baseline`` the seed-spread verdict and, below ``n_seeds`` seeds, whether more seeds
    could still make it win."""
    out: dict[str, dict] = {}

    def recipe_entry(name):
        return out.setdefault(name, {"members": [], **{f: [] for f in FIGURES}, "n_recorded": 0})

    for row in rows:
        recipe = recipe_entry(row["recipe"])
        recipe["members"].append(row["name"])
        for f in FIGURES:
            recipe[f].append(row[f])
        recipe.setdefault("by_source_seeds", []).append(row["by_source"])
    for name, values in (recorded or {}).items():
        # seeds measured earlier on the same basis join the ranking figure (the other figures stay the scored seeds')
        recipe = recipe_entry(name)
        recipe[RANKING] = [float(v) for v in values] + recipe[RANKING]
        recipe["members"] = [f"{name}-recorded{i}" for i in range(len(values))] + recipe["members"]
        recipe["n_recorded"] = len(values)
    for recipe in out.values():
        recipe["n"] = len(recipe[RANKING])
        seeds = recipe.pop("by_source_seeds", [])
        if seeds:  # each collection's non-text rejected at the dev threshold, mean over seeds
            recipe["by_source"] = {s: float(np.mean([b[s] for b in seeds])) for s in seeds[0]}
    if baseline is not None:
        if baseline not in out:
            raise ValueError(f"baseline {baseline!r} is not a recipe here ({', '.join(out) or 'none'})")
        base = out[baseline][RANKING]
        for name, recipe in out.items():
            if name == baseline:
                continue
            v = recipe[RANKING]
            recipe["verdict"] = ("needs 2 seeds" if min(len(v), len(base)) < 2 else
                                 spread_rule(float(np.mean(v)), half_range(v), float(np.mean(base)), half_range(base)))
            if n_seeds and recipe["n"] < n_seeds:
                recipe["could_still_win"] = could_still_win(v, base, n_seeds)
    return out


def markdown(rows: Sequence[dict], recipes: dict[str, dict], baseline: str | None = None) -> str:
    srcs = sorted({s for r in rows for s in r["by_source"]})
    lines = ["| candidate | non-text rejected at dev threshold | at recall 0.95 on the never-seen text | "
             "text recall at dev threshold | " + " | ".join(srcs) + " |", "|---" * (4 + len(srcs)) + "|"]
    for r in rows:
        name = r["name"] + (" (trained on the text pool: its own text only)" if r["text_pool_seen"] else "")
        lines.append(f"| {name} | {r['rej_dev']:.3f} | {r['rej95']:.3f} | {r['recall_dev']:.3f} | "
                     + " | ".join(f"{r['by_source'].get(s, float('nan')):.3f}" for s in srcs) + " |")
    lines += ["", "| recipe | n | rejected at dev threshold | rejected at recall 0.95 | text recall at dev threshold"
              + (f" | against {baseline}" if baseline else "") + " |",
              "|---" * (5 + bool(baseline)) + "|"]
    for name, recipe in recipes.items():
        cells = [mean_spread(recipe[f]) if recipe.get(f) else "-" for f in FIGURES]
        verdict = ""
        if baseline:
            verdict = " | baseline" if name == baseline else f" | {recipe['verdict']}" + (
                "" if "could_still_win" not in recipe else
                "; more seeds could still win" if recipe["could_still_win"] else "; no further seeds can win")
        n = f"{recipe['n']} ({recipe['n_recorded']} recorded)" if recipe["n_recorded"] else str(recipe["n"])
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + verdict + " |")
    scored = {name: recipe for name, recipe in recipes.items() if recipe.get("by_source")}
    if scored:
        lines += ["", "Each collection's non-text rejected at the dev threshold, mean over seeds:", "",
                  "| recipe | " + " | ".join(srcs) + " |", "|---" * (1 + len(srcs)) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{recipe['by_source'].get(s, float('nan')):.3f}" for s in srcs) + " |"
                  for name, recipe in scored.items()]
    return "\n".join(lines)


def parse_recorded(specs: Sequence[str]) -> dict[str, list[float]]:
    out = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        try:
            out[name] = [float(v) for v in values.split(",")]
        except ValueError:
            out[name] = []
        if not sep or not name or not out[name]:
            raise ValueError(f"--recorded takes NAME=v,v,...: got {spec!r}")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m training.neverseen", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text_dir", help="training.select --out of the pool whose text joins the threshold (people pool)")
    parser.add_argument("eval_dir", help="training.select --out of the evaluation-only pool")
    parser.add_argument("--baseline", default=None, help="a recipe to judge the others against (seed-spread rule)")
    parser.add_argument("--recorded", nargs="*", default=[], metavar="NAME=v,v",
                        help="a recipe's per-seed ranking figures measured earlier on the same basis")
    parser.add_argument("--seeds", type=int, default=None, help="seeds a recipe is judged with (says whether more could win)")
    parser.add_argument("--audit", default=None, help="an audit file whose non-text verdicts relabel the pools' images")
    parser.add_argument("--text_without", default="", help="collections (comma-separated) whose text is left out")
    parser.add_argument("--keep_lines", action="store_true", help="keep ocrd-documents' text-line strips")
    parser.add_argument("--extra_text", nargs="*", default=[], metavar="DIR",
                        help="training.select --out folders of further never-seen pools whose text joins the threshold")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="also report the ranking figure's noise from the images (N paired resamples)")
    parser.add_argument("--bootstrap_reference", default=None,
                        help="the candidate the bootstrap's differences are taken against (default: the baseline's first)")
    parser.add_argument("--out", default=None, help="also write the tables here (.md) and the figures beside it (.json)")
    args = parser.parse_args(argv)
    try:
        recorded = parse_recorded(args.recorded)
        non_text = audited_non_text(args.audit) if args.audit else frozenset()
        text_without = [s for s in args.text_without.split(",") if s]
        rows = candidate_rows(args.text_dir, args.eval_dir, args.keep_lines, text_without, non_text, args.extra_text)
        recipes = recipe_rows(rows, recorded, args.baseline, args.seeds)
        noise = by_recipe = None
        if args.bootstrap:
            reference = args.bootstrap_reference or next(
                (r["name"] for r in rows if args.baseline and r["recipe"] == args.baseline), rows[0]["name"])
            noise = bootstrap_noise(args.text_dir, args.eval_dir, [r["name"] for r in rows], reference,
                                    args.bootstrap, keep_lines=args.keep_lines, text_without=text_without,
                                    non_text=non_text, extra_text=args.extra_text, keep_draws=True)
            by_recipe = (recipe_bootstrap(noise, rows, args.baseline)
                         if args.baseline and any(r["recipe"] == args.baseline for r in rows) else None)
            for v in noise.values():
                v.pop("draws")
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    table = markdown(rows, recipes, args.baseline)
    if noise:
        table += "\n\n" + bootstrap_markdown(noise, reference, args.bootstrap, by_recipe, args.baseline)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table + "\n")
        out.with_suffix(".json").write_text(json.dumps({"candidates": rows, "recipes": recipes, "bootstrap": noise,
                                                         "bootstrap_recipes": by_recipe}, indent=2))
    return {"candidates": rows, "recipes": recipes, "bootstrap": noise, "bootstrap_recipes": by_recipe}


if __name__ == "__main__":
    main()
