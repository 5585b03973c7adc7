"""``python -m training.collections {screen,rescreen,relabel,build,sheets,summary}``: see the package docstring."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from training.collections.gitsource import DEFAULT_MIRROR
from training.collections.labels import LABELS_DIR
from training.collections.manifest import KINDS, MANIFEST_DIR, load_manifests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.collections", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("screen", "rescreen", "relabel", "build", "sheets", "summary"):
        p = sub.add_parser(name)
        p.add_argument("--manifests", default=str(MANIFEST_DIR), help="folder of manifests")
        p.add_argument("--labels", default=str(LABELS_DIR), help="folder of the committed labels files")
        p.add_argument("--collections", nargs="*", default=[], help="only these collections (default: all)")
        p.add_argument("--kinds", nargs="*", default=[], choices=KINDS, help="only collections of these kinds")
        p.add_argument("--eval_only", action="store_true",
                       help="the evaluation-only collections (never trained on; build them into their own pool)")
        p.add_argument("--eval_pool", default="",
                       help="the evaluation-only collections of this evaluation pool (e.g. extra-text; implies --eval_only)")
        if name in ("screen", "build"):
            p.add_argument("--mirror", default=DEFAULT_MIRROR, help="folder of git directories (owner+name/repo)")
        if name == "screen":
            p.add_argument("--chunk", type=int, default=50, help="images of one collection per turn")
            p.add_argument("--limit", type=int, default=None, help="stop after this many images")
            p.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
            p.add_argument("--det_min_side", type=int, default=320, help="enlarge smaller images to this short side")
        if name == "relabel":
            p.add_argument("--audit", required=True,
                           help="audit file: collection<TAB>path<TAB>label<TAB>note a line (training.collections.audit)")
        if name == "build":
            p.add_argument("--out", required=True, help="pool root (outside git)")
        if name == "sheets":
            p.add_argument("--pool", required=True, help="a built pool root")
            p.add_argument("--out", required=True, help="folder for the PNG sheets")
            p.add_argument("--label", type=int, default=0)
            p.add_argument("--n", type=int, default=300)
            p.add_argument("--per_sheet", type=int, default=20)
            p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        manifests = load_manifests(args.manifests, args.collections, args.kinds, args.eval_only, args.eval_pool)
    except ValueError as exc:  # an unknown collection or evaluation pool, a malformed manifest
        parser.error(str(exc))
    if args.command == "screen":
        from training.collections.screen import screen_collections

        print(json.dumps(screen_collections(manifests, args.mirror, args.labels, args.chunk, args.limit, args.threads,
                                                    args.det_min_side)))
    elif args.command == "rescreen":
        from training.collections.screen import rescreen_collections

        print(json.dumps(rescreen_collections(manifests, args.labels)))
    elif args.command == "relabel":
        from training.collections.audit import apply_audit, read_audit

        try:
            rows = read_audit(args.audit)
        except (OSError, ValueError) as e:
            parser.error(f"relabel: {e}")
        result = apply_audit(rows, args.labels)
        print(json.dumps(result, indent=1))
        if result["not_found"]:
            logging.warning("%d audited images are not in their labels files", len(result["not_found"]))
    elif args.command == "build":
        from training.collections.build import build_pool

        report = build_pool(manifests, args.out, args.mirror, args.labels)
        print(json.dumps(report.summary(), indent=1))
    elif args.command == "sheets":
        from training.collections.sheets import contact_sheets

        for path in contact_sheets(args.pool, args.out, {m.name for m in manifests}, args.label, args.n,
                                   args.per_sheet, args.seed):
            print(path)
    else:
        from training.collections.summary import summary

        print(json.dumps(summary(manifests, args.labels), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
