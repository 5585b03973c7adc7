"""Session 23: students on the evaluation-only collections (never trained on, /work/pool-new:
weather, face-masks, clothing, sr-benchmarks*), beside a pool whose text joins the threshold.

Usage: PYTHONPATH=. python docs/select/session23_newpool.py runs/select23a runs/select23n [--audit TSV]
       [--text_without SRC,SRC] [--keep_lines]

Since session 31 this is `python -m training.neverseen` (the same two folders, the same flags, plus
--baseline / --recorded / --seeds); kept so the commands of sessions 23-30 still run."""
import sys

from training.neverseen import main

if __name__ == "__main__":
    main(sys.argv[1:])
