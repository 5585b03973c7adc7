"""Session 32 diagnostic: does the student follow its teacher less on images it never saw?

    PYTHONPATH=. python docs/select/session32_agreement.py TEACHER STUDENT [STUDENT ...] \
        --seen /work/pool-rest-s1000 --unseen /work/pool-new --cache runs/score_cache

``--seen``: a pool root of unlabelled images the students trained on (teacher labels only; a
random 1,000 of the 21,514 made into a root whose labels are all 0); ``--unseen``: the
evaluation-only pool. Per student and set: the rank correlation of its image scores with the
teacher's, the mean absolute difference of the scores, and, at each model's dev threshold
(recall >= 0.96), how often the two decide differently. A student that follows the teacher on the
seen images but not on the unseen ones is short of data or generalisation, not of capacity.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from model.preprocessing import preprocess_from_meta
from model.registry import load_checkpoint
from training.config import DataConfig, default_data_root
from training.select import candidate_names, candidate_path, rank_correlation, score_all
from training.metrics import threshold_for_recall
from training.score_cache import ScoreCache


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="NAME=PATH; the first is the teacher")
    parser.add_argument("--seen", required=True)
    parser.add_argument("--unseen", required=True)
    parser.add_argument("--cache", default="runs/score_cache")
    args = parser.parse_args(argv)
    names = candidate_names(args.checkpoints)
    files = {n: candidate_path(s) for n, s in zip(names, args.checkpoints)}
    models, preprocess = {}, None
    for name in names:
        model, meta = load_checkpoint(files[name])
        models[name], preprocess = model, preprocess_from_meta(meta)
    cache = ScoreCache(args.cache)
    dev = score_all(models, DataConfig(root=default_data_root()), "dev", preprocess, 32, "max", cache=cache,
                    checkpoints=files)
    thr = {n: threshold_for_recall(dev["scores"][n], dev["labels"], 0.96) for n in names}
    teacher, result = names[0], {"thresholds": thr}
    sets = (("seen (unlabelled, trained on)", args.seen, False), ("unseen (evaluation-only)", args.unseen, True))
    for label, root, non_text_only in sets:
        got = score_all(models, DataConfig(root=root), "all", preprocess, 32, "max", cache=cache, checkpoints=files)
        keep = got["labels"] == 0 if non_text_only else np.ones(len(got["labels"]), bool)
        t = got["scores"][teacher][keep]
        for name in names[1:]:
            s = got["scores"][name][keep]
            row = {"n": int(keep.sum()), "rank_corr": rank_correlation(list(t), list(s)),
                   "mean_abs_diff": float(np.abs(t - s).mean()),
                   "teacher_passes": float((t >= thr[teacher]).mean()), "student_passes": float((s >= thr[name]).mean()),
                   "disagree": float(((t >= thr[teacher]) != (s >= thr[name])).mean())}
            result[f"{name} / {label}"] = row
            print(f"{name:24s} {label:32s} " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                           for k, v in row.items()))
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
