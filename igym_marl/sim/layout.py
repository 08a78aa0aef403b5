"""Index constants shared by the fast kernel, the reference implementation and the metrics.

The fast path keeps the request table as arrays (hot path: arrays, not objects):
``ri: int64[n, N_RI]`` and ``rf: float64[n, N_RF]``, one row per request (a request's fields
share a cache line). The KV pool's prefix cache is a table of nodes (``nd: int64[N, N_ND]``), a
free queue threaded through them, and a hash table from block keys to nodes (``ht: int64[H, 2]``);
engine.py describes them.
"""

# request status
FUTURE, WAITING, RUNNING, FINISHED, REJECTED, ABANDONED = 0, 1, 2, 3, 4, 5
# SLO outcome, decided once per request
SLO_OPEN, SLO_MET, SLO_MISSED = 0, 1, 2

# columns of ri (int64)
(PROMPT, OUT, TEN, STATUS, TARGET, DONE, GEN, BLOCKS, ADMIT, NPRE, SLO, KEY, DRAWS, NSH, FROZEN, OWN_NODE, OWN_START,
 HIT) = range(18)
N_RI = 18
# BLOCKS: KV blocks a running request holds (its shared prefix blocks and its own).
# NSH: the leading blocks it holds as keyed nodes of the prefix cache (hits, or blocks it computed and
#   registered under the workload's key for that position); its other blocks are its own, unkeyed.
# FROZEN: 1 once a block it computed duplicated a key registered meanwhile by another request: it
#   registers no further block this admission (the duplicate stays its own, as in vLLM).
# OWN_NODE / OWN_START: while it waits after a preemption, the free-queue node holding its own
#   computed blocks (-1: none left) and the block index they start at.
# HIT: prompt tokens its first admission found in the prefix cache.
# columns of rf (float64)
ARR, FIRST, FINISH, LAST = range(4)
N_RF = 4

# scalars (int64)
(S_NRUN, S_NEXT, S_FREE, S_CAP, S_ADMIT_CTR, S_PRE_CTR, S_WATERMARK, S_PEND_SUM, S_PEND_MAX, S_CAP_NEXT,
 S_FHEAD, S_FTAIL, S_CACHED, S_NDTOP, S_HT_N) = range(15)
N_SI = 15
# S_FREE: blocks in the free queue (cached or empty); S_CAP - S_FREE blocks are in use.
# S_CAP_NEXT: the capacity the next window must reach (set when the KV budget or tier changes).
# S_FHEAD / S_FTAIL: the free queue's first and last node (-1: empty). S_CACHED: blocks in the
#   free queue that still hold reusable KV. S_NDTOP: spare nodes on the node stack. S_HT_N: keys held.

# per-window counters (float64)
(W_ITERS, W_BUSY_S, W_PREFILL_TOK, W_DECODE_TOK, W_EVICT, W_SPEC_PROPOSED, W_SPEC_ACCEPTED,
 W_REJECTED, W_ARRIVED, W_KV_BLOCK_S, W_PREFILL_ITERS, W_MAX_ITER_S, W_ABANDONED, W_ADMIT_PROMPT_TOK,
 W_HIT_TOK, W_CACHED_BLOCK_S) = range(16)
N_W = 16
# W_ADMIT_PROMPT_TOK / W_HIT_TOK: prompt tokens of first admissions, and those found cached.
# W_CACHED_BLOCK_S: cached, unreferenced blocks x seconds (their time-average share of the pool).

# event lists (int64[N_EV, n]) with counts in ev_n
EV_DECIDED, EV_FIRST, EV_FINISHED, EV_ABANDONED = range(4)
N_EV = 4

# tenant table (float64[N_TF, T])
TF_PRIO, TF_TTFT_S, TF_TPOT_S, TF_ACC0, TF_TIMEOUT_S = range(5)
N_TF = 5

# engine parameters (float64[N_P])
(P_CHUNK_BUDGET, P_PREFILL_BUDGET, P_BLOCK_TOKENS, P_DRAFT_RATIO, P_HALF_CTX, P_PREFIX_CACHING, P_API_S,
 P_MAX_MODEL_LEN) = range(8)
N_P = 8
# P_API_S: client-visible latency outside the engine loop, added to every first token and finish.
# P_MAX_MODEL_LEN: the model's context; a longer prompt is refused on arrival, as vLLM refuses it.

# prefix-cache nodes (int64[N, N_ND]): a keyed block, or a run of unkeyed blocks in the free queue
ND_KIND, ND_KEY, ND_REF, ND_COUNT, ND_OWNER, ND_PREV, ND_NEXT = range(7)
N_ND = 7
KIND_SPARE, KIND_KEYED, KIND_RUN = 0, 1, 2
# KEYED: one block holding the KV of the prefix named by ND_KEY; ND_REF requests use it (0: it waits in
#   the free queue, still reusable). RUN: ND_COUNT free blocks; with ND_OWNER >= 0 they hold that
#   request's own computed blocks (reusable by it alone), tail block first; -1: empty blocks.
EMPTY_KEY = -(2 ** 63)
