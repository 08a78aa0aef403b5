import importlib.util
import math

import numpy as np
import pytest

from igym_marl.paths import DATA_DIR


# RLlib's, BenchMARL's and rliable's tests run in their extras' own environments (make test-ray,
# make test-benchmarl, make test-rliable); elsewhere they are not collected.
collect_ignore_glob = [f"{d}/*" for d in ("ray", "benchmarl", "rliable") if not importlib.util.find_spec(d)]


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


def random_workload(rng, n, horizon_s, tenants, max_prompt=3000, max_out=300, keyed=False, block_tokens=16):
    """Random requests; with `keyed`, block keys that share prefixes the ways real traffic does:
    a few shared system prompts of random lengths, and conversations whose next turn resends an
    earlier request's prompt and answer (its keys cover both) before a new message."""
    from igym_marl.sim import Workload
    arrival = np.sort(rng.uniform(0, horizon_s, n))
    prompt, out = rng.integers(1, max_prompt, n), rng.integers(1, max_out, n)
    tenant = rng.integers(0, len(tenants), n)
    if not keyed:
        return Workload(arrival, prompt, out, tenant, tenants)
    fresh = iter(range(10**9, 2 * 10**9))
    systems = [[next(fresh) for _ in range(int(rng.integers(1, 12)))] for _ in range(3)]
    keys: list[list[int]] = []
    for i in range(n):
        full = int(prompt[i] + out[i]) // block_tokens
        if keys and rng.random() < 0.4:  # the next turn of an earlier request's conversation
            j = int(rng.integers(0, len(keys)))
            head = keys[j][: int(rng.integers(0, len(keys[j]) + 1))]
        else:
            head = systems[int(rng.integers(0, 3))] if rng.random() < 0.7 else []
        chain = head[:full] + [next(fresh) for _ in range(max(0, full - len(head)))]
        keys.append(chain[: int(rng.integers(0, full + 1))] if rng.random() < 0.2 else chain)
    ptr = np.concatenate([[0], np.cumsum([len(k) for k in keys])]).astype(np.int64)
    return Workload(arrival, prompt, out, tenant, tenants, key_ptr=ptr,
                    block_keys=np.array([x for k in keys for x in k], dtype=np.int64), key_block_tokens=block_tokens)


def same_requests(fast, ref) -> bool:
    """The kernel's and the reference's request tables agree (OWN_NODE only in whether it is set:
    the kernel's node ids have no counterpart in the reference)."""
    from igym_marl.sim.layout import OWN_NODE
    a, b = fast.ri.copy(), ref.ri.copy()
    a[:, OWN_NODE] = np.minimum(a[:, OWN_NODE], 0)
    b[:, OWN_NODE] = np.minimum(b[:, OWN_NODE], 0)
    return np.array_equal(a, b)
