"""Public image collections that grow the training data (issue 18).

- ``manifests/<name>.json``: a collection (repository at a commit, paths, licence, kind).
- ``labels/<name>.jsonl``: the committed screening result of each file (sha256, label, boxes).
- ``python -m training.collections screen``: PP-OCR screening into the labels files.
- ``python -m training.collections build --out POOL``: the images re-encoded into a pool
  with ``POOL/labels.jsonl`` in the shared data's format (``training.data.load_records``).
- ``python -m training.collections sheets``: contact sheets for the label check.
"""
