"""docs/server.md's curl block runs as written: a whole episode over HTTP sessions, graded."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _block() -> str:
    doc = (ROOT / "docs" / "server.md").read_text()
    m = re.search(r"Plain HTTP, with sessions.*?```bash\n(.*?)```", doc, re.S)
    assert m, "docs/server.md lost its curl block"
    return m.group(1)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_block_plays_grades_and_closes_an_episode(live_server, tmp_path):
    script = _block().replace("localhost:8000", f"127.0.0.1:{live_server.port}")
    assert "localhost:8000" not in script
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    first, grade, baseline = (json.loads(x) for x in r.stdout.replace("}{", "}\n{").splitlines() if x.strip())
    assert first["observation"]["window"] == 1 and first["observation"]["task_id"] == "bursty_workload"
    log = json.loads((tmp_path / "episode.json").read_text())
    assert set(log) == {"task_id", "seed", "actions"} and len(log["actions"]) == 120 and log["seed"] == 7
    assert grade["windows"] == 120 and grade["score"] == baseline["score"]  # the heuristic, replayed and run here
    assert live_server.status()["http_sessions"] == 0  # the DELETE closed it
