"""Public image collections that grow the training data (issue 18).

- ``manifests/<name>.json``: a collection (repository at a commit, paths, licence, kind; a
  ``<name>-rest`` manifest with ``rest_of`` is the unlabelled remainder of a labelled one).
- ``labels/<name>.jsonl``: the committed screening result of each file (sha256, label, boxes).
- ``python -m training.collections screen``: PP-OCR screening into the labels files (no OCR
  for kind ``unlabelled``: label -1 for every decodable file).
- ``python -m training.collections relabel --audit FILE``: labels a person set by looking at
  the images (``audit.py``), over the screening rule's, kept by later ``rescreen`` runs.
- ``python -m training.collections build --out POOL``: the images re-encoded into a pool
  with ``POOL/labels.jsonl`` in the shared data's format (``training.data.load_records``) and
  the unlabelled images in ``POOL/unlabelled.jsonl`` (``DataConfig.unlabelled_pools``).
- ``python -m training.collections sheets``: contact sheets for the label check.
"""
