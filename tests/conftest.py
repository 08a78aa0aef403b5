import importlib.util
import math

import numpy as np
import pytest

from igym_marl.paths import DATA_DIR


# RLlib's tests run in the ray extra's own environment (make test-ray); elsewhere they are not collected.
collect_ignore_glob = [] if importlib.util.find_spec("ray") else ["ray/*"]


def same(a, b):
    """Structural equality with NaN == NaN (for metrics dicts)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture
def llm_server():
    """A fake chat-completions server (tests/fakellm.py) on loopback; yields its base URL."""
    import threading
    from http.server import HTTPServer

    from tests.fakellm import FakeLLM
    server = HTTPServer(("127.0.0.1", 0), FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeLLM.script, FakeLLM.requests = [], []
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


@pytest.fixture
def data_dir():
    """The repository's data/ folder (it ships with the code; a missing file is a failure, not a skip)."""
    return DATA_DIR


def random_workload(rng, n, horizon_s, tenants, max_prompt=3000, max_out=300):
    from igym_marl.sim import Workload
    arrival = np.sort(rng.uniform(0, horizon_s, n))
    return Workload(arrival, rng.integers(1, max_prompt, n), rng.integers(1, max_out, n),
                    rng.integers(0, len(tenants), n), tenants)
