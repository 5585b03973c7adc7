"""Files of a repository at a commit, read from a local git directory (what ``fetch`` gives:
``<mirror>/<owner>+<name>/repo``) without a work tree."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

DEFAULT_MIRROR = "/work/.mirror"


def git_dir_of(mirror: str | Path, repository: str) -> Path:
    """The git directory of ``owner/name`` under a mirror folder (``owner+name/repo``, or
    ``owner+name/repo/.git`` as some snapshots come), or the mirror folder itself when it is
    that git directory."""
    mirror = Path(mirror)
    own = mirror / repository.replace("/", "+")
    for candidate in (own / "repo", own / "repo" / ".git", own, mirror):
        if (candidate / "objects").is_dir() and (candidate / "HEAD").is_file():
            return candidate
    raise FileNotFoundError(f"no git directory of {repository} under {mirror} (fetch github:{repository})")


class GitSource:
    """Blob listing and reading of one commit; ``read`` returns None for a blob the snapshot
    lacks (files of 4 MiB and more are listed but absent)."""

    def __init__(self, git_dir: str | Path, commit: str):
        self.git_dir = str(git_dir)
        self.commit = commit
        self._batch: Optional[subprocess.Popen] = None

    def _git(self, *args: str) -> bytes:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], check=True, capture_output=True).stdout

    def files(self) -> dict[str, str]:
        """{path: blob id} of every file of the commit."""
        out = {}
        for entry in self._git("ls-tree", "-r", "-z", "--full-tree", self.commit).split(b"\0"):
            if entry:
                meta, path = entry.split(b"\t", 1)
                mode, kind, blob = meta.split()
                if kind == b"blob":
                    out[path.decode("utf-8", "surrogateescape")] = blob.decode()
        return out

    def read(self, blob: str) -> Optional[bytes]:
        if self._batch is None:
            self._batch = subprocess.Popen(["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._batch.stdin.write(blob.encode() + b"\n")
        self._batch.stdin.flush()
        header = self._batch.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":  # "<oid> missing"
            return None
        data = self._batch.stdout.read(int(header[2]))
        self._batch.stdout.read(1)  # the newline after the contents
        return data

    def close(self) -> None:
        if self._batch is not None:
            self._batch.stdin.close()
            self._batch.wait()
            self._batch = None

    def __enter__(self) -> "GitSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
