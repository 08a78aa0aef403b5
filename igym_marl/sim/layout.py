"""Index constants shared by the fast kernel, the reference implementation and the metrics.

The fast path keeps the request table as arrays (hot path: arrays, not objects):
``ri: int64[n, N_RI]`` and ``rf: float64[n, N_RF]``, one row per request (a request's fields
share a cache line).
"""

# request status
FUTURE, WAITING, RUNNING, FINISHED, REJECTED, ABANDONED = 0, 1, 2, 3, 4, 5
# SLO outcome, decided once per request
SLO_OPEN, SLO_MET, SLO_MISSED = 0, 1, 2

# columns of ri (int64)
PROMPT, OUT, TEN, STATUS, TARGET, DONE, GEN, BLOCKS, ADMIT, NPRE, SLO, KEY, DRAWS, CACHE_AT, CACHE_BLOCKS = range(15)
N_RI = 15
# CACHE_AT / CACHE_BLOCKS: a preempted request's full KV blocks stay in the prefix cache (vLLM V1's
# automatic prefix caching) until the free queue reaches them; they are evicted once the pool's
# cumulative fresh allocations (S_ALLOC_CTR) pass CACHE_AT, tail block first.
# columns of rf (float64)
ARR, FIRST, FINISH, LAST = range(4)
N_RF = 4

# scalars (int64)
S_NRUN, S_NEXT, S_FREE, S_CAP, S_ADMIT_CTR, S_PRE_CTR, S_WATERMARK, S_PEND_SUM, S_PEND_MAX, S_ALLOC_CTR = range(10)
N_SI = 10

# per-window counters (float64)
(W_ITERS, W_BUSY_S, W_PREFILL_TOK, W_DECODE_TOK, W_EVICT, W_SPEC_PROPOSED, W_SPEC_ACCEPTED,
 W_REJECTED, W_ARRIVED, W_KV_BLOCK_S, W_PREFILL_ITERS, W_MAX_ITER_S, W_ABANDONED) = range(13)
N_W = 13

# event lists (int64[N_EV, n]) with counts in ev_n
EV_DECIDED, EV_FIRST, EV_FINISHED, EV_ABANDONED = range(4)
N_EV = 4

# tenant table (float64[N_TF, T])
TF_PRIO, TF_TTFT_S, TF_TPOT_S, TF_ACC0, TF_TIMEOUT_S = range(5)
N_TF = 5

# engine parameters (float64[N_P])
P_CHUNK_BUDGET, P_PREFILL_BUDGET, P_BLOCK_TOKENS, P_DRAFT_RATIO, P_HALF_CTX, P_PREFIX_CACHING = range(6)
N_P = 6
