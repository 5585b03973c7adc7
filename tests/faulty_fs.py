"""A fault-injecting fsspec filesystem for tests: ``faulty://name`` serves bytes from
memory with the faults set for that name.

    FaultyFileSystem.put("a.jpg", data, Fault(fail_first=2))   # two failed reads, then fine
    fsspec.register_implementation("faulty", FaultyFileSystem, clobber=True)

The state lives on the class, so the pipeline's DoFns see it when they run in the test's
process (FnApiRunner's default in-memory mode), however fsspec caches instances.
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from fsspec.spec import AbstractFileSystem

PROTOCOL = "faulty"


@dataclass(frozen=True)
class Fault:
    fail_first: int = 0                # the first k read attempts raise ``error`` at their first read
    error: type = ConnectionResetError
    hang_first: int = 0                # the first k attempts block in read (until reset()), ...
    hang_all: bool = False             # ... or every attempt does
    cut_first: int = 0                 # the first k attempts end early (EOF), the full size still reported
    chunk: int = 0                     # every read returns at most this many bytes (a socket-like short read)
    size: Optional[int] = None         # the size the file reports (default: the real one)


class _FaultyFile(io.BytesIO):
    def __init__(self, data: bytes, fault: Fault, attempt: int, release: threading.Event):
        cut = fault.cut_first >= attempt
        super().__init__(data[: len(data) // 2] if cut else data)
        self.size = fault.size if fault.size is not None else len(data)
        self.fault = fault
        self.attempt = attempt
        self.release = release
        self.reads = 0

    def read(self, n=-1):
        self.reads += 1
        FaultyFileSystem.reads[self.name] += 1
        f = self.fault
        if self.reads == 1 and f.fail_first >= self.attempt:
            raise f.error(f"injected fault on attempt {self.attempt}")
        if f.hang_all or f.hang_first >= self.attempt:
            self.release.wait()
        if f.chunk and (n is None or n < 0 or n > f.chunk):
            n = f.chunk
        return super().read(n)


class FaultyFileSystem(AbstractFileSystem):
    protocol = PROTOCOL
    cachable = False

    files: dict[str, bytes] = {}
    faults: dict[str, Fault] = {}
    opens: Counter = Counter()
    reads: Counter = Counter()
    _release = threading.Event()

    @classmethod
    def reset(cls) -> None:
        """Forget every file and fault, and let hung reads return."""
        cls._release.set()
        cls._release = threading.Event()
        cls.files.clear()
        cls.faults.clear()
        cls.opens.clear()
        cls.reads.clear()

    @classmethod
    def put(cls, name: str, data: bytes, fault: Fault = Fault()) -> str:
        """Serve ``data`` as ``faulty://name`` with ``fault``; returns the URI."""
        path = cls._strip_protocol(name)
        cls.files[path] = data
        cls.faults[path] = fault
        return f"{PROTOCOL}://{path}"

    @classmethod
    def _strip_protocol(cls, path):
        path = path[len(PROTOCOL) + 3:] if path.startswith(PROTOCOL + "://") else path
        return path.strip("/")

    def _open(self, path, mode="rb", **kwargs):
        if "r" not in mode:
            raise PermissionError("faulty:// is read-only")
        path = self._strip_protocol(path)
        if path not in self.files:
            raise FileNotFoundError(path)
        self.opens[path] += 1
        f = _FaultyFile(self.files[path], self.faults[path], self.opens[path], self._release)
        f.name = path
        return f

    def info(self, path, **kwargs):
        path = self._strip_protocol(path)
        if path not in self.files:
            raise FileNotFoundError(path)
        return {"name": path, "size": len(self.files[path]), "type": "file"}

    def ls(self, path, detail=True, **kwargs):
        path = self._strip_protocol(path)
        found = [self.info(p) for p in sorted(self.files) if p.rsplit("/", 1)[0] == path or not path]
        return found if detail else [f["name"] for f in found]
