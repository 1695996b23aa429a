"""A real ``avrec serve`` process on a free loopback port, over an index built from
generated taste data (four content clusters; each user likes one)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from taste import make_taste, write_embeddings  # noqa: E402

from avrec_runner import run_avrec  # noqa: E402

NEW = [25, 26, 27, 28, 29]  # cluster 0's least popular items: added to the index later, never trained on


def ok(r) -> str:
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Server:
    """``python -m avrec serve ...`` in a subprocess; ``url`` once it listens."""

    def __init__(self, *args: str, env: dict | None = None, cwd: Path | None = None, verify=True):
        import tempfile

        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
        # stderr (the access log) goes to a file: an unread pipe would fill and stall the server
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, "-m", "avrec", "serve", *args, "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL,
                                     text=True, env=full_env, cwd=cwd, start_new_session=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith(("http://", "https://")):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not start: {line!r} {self.stderr()}")
        self.url = line
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=verify)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """SIGTERM: to the server (a supervisor stops its workers); SIGKILL: to every process
        of the server at once, as a crash or the OOM killer of its container would."""
        self.client.close()
        if sig == signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        elif self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()

    def stderr(self) -> str:
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="package")
def world(tmp_path_factory):
    """(taste, dict of paths): embeddings with and without NEW, a model and an index
    trained without NEW, and the interactions file."""
    tmp = tmp_path_factory.mktemp("serve")
    taste = make_taste(n_users=80, items_per_cluster=30, per_user=12, seed=3)
    new_ids = {taste.item_ids[i] for i in NEW}
    ev = tmp / "interactions.csv"
    with open(ev, "w", encoding="utf-8") as f:
        f.write("user_id,item_id,weight,timestamp\n")
        for u, i, w, t in taste.rows:
            if i not in new_ids:
                f.write(f"{u},{i},{w:g},{t}\n")
    full, part = tmp / "emb-full", tmp / "emb-part"
    write_embeddings(taste, full)
    write_embeddings(taste, part, items=[i for i in range(len(taste.item_ids)) if i not in NEW])
    model = tmp / "model"
    ok(run_avrec("train", str(part), "-i", str(ev), "-o", str(model), "--set", "train.hybrid.content_dim=8",
                 "--set", "runtime.seed=0"))
    idx = tmp / "index"
    ok(run_avrec("index", str(model), "-o", str(idx), "--n-trees", "10"))
    return taste, {"tmp": tmp, "interactions": ev, "emb_full": full, "emb_part": part, "model": model, "index": idx}


def copy_index(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def wait_for(pred, timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
