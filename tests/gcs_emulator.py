"""A local GCS server for tests: gcp-storage-emulator on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

# Must be set before gcsfs is imported, or every bucket lookup waits on a gRPC call the
# emulator cannot answer.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port} after {timeout} s")


class GcsEmulator:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        exe = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
        self.proc = subprocess.Popen(
            [exe, "start", "--host=127.0.0.1", f"--port={self.port}", "--in-memory"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)

    @property
    def storage_options(self) -> dict:
        return {"gs": {"endpoint_url": self.endpoint, "token": "anon"}}

    def filesystem(self):
        import gcsfs

        return gcsfs.GCSFileSystem(endpoint_url=self.endpoint, token="anon")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
