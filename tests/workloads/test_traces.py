"""Trace loaders: the released formats, the tie rule, filters, and clear errors."""

import numpy as np
import pytest

from igym_marl.workloads import TraceFormatError, load_azure, load_burstgpt
from igym_marl.sim import Tenant

HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"
ROWS = ["5,ChatGPT,472,18,490,Conversation log", "45,ChatGPT,1087,230,1317,Conversation log",
        "45,GPT-4,417,276,693,API log", "45,ChatGPT,10,0,10,Conversation log", "118,GPT-4,417,276,693,Conversation log",
        "130,ChatGPT,50,5,55,API log"]


def write(tmp_path, lines, name="b.csv", eol="\n"):
    p = tmp_path / name
    p.write_bytes(eol.join(lines).encode() + eol.encode())
    return p


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_burstgpt_release_format(tmp_path, eol):
    w, r = load_burstgpt(write(tmp_path, [HEADER] + ROWS, eol=eol), seed=0)
    assert r.rows == 6 and r.failed_dropped == 1 and r.kept == 5
    assert list(w.prompt_tokens) == [472, 1087, 417, 417, 50]
    assert list(w.output_tokens) == [18, 230, 276, 276, 5]
    assert [w.tenants[i].name for i in w.tenant] == ["conversation", "conversation", "api", "conversation", "api"]
    assert r.tenants == {"conversation": 3, "api": 2}
    # ties at second 45 stay in file order, spread within [45, 46)
    assert 45 <= w.arrival_s[1] < w.arrival_s[2] < 46 and 5 <= w.arrival_s[0] < 6


def test_tie_rule_is_seeded(tmp_path):
    p = write(tmp_path, [HEADER] + ROWS)
    a, _ = load_burstgpt(p, seed=1)
    b, _ = load_burstgpt(p, seed=1)
    c, _ = load_burstgpt(p, seed=2)
    assert np.array_equal(a.arrival_s, b.arrival_s) and not np.array_equal(a.arrival_s, c.arrival_s)


def test_v12_columns_keep_failed_filters_window(tmp_path):
    lines = [HEADER + ",Session ID,Elapsed time"] + [r + f",s{i},1.5" for i, r in enumerate(ROWS)]
    p = write(tmp_path, lines)
    w, r = load_burstgpt(p, keep_failed=True)
    assert r.failed_kept == 1 and r.failed_dropped == 0 and len(w) == 6 and w.output_tokens.min() == 1
    w, r = load_burstgpt(p, models=["GPT-4"])
    assert len(w) == 2 and r.filtered_out == 4
    w, r = load_burstgpt(p, log_types=["API log"])
    assert len(w) == 2 and [t.name for t in w.tenants] == ["api"]
    w, _ = load_burstgpt(p, start_s=40, duration_s=80)  # seconds 40..120: rows at 45 (x3, one failed) and 118
    assert len(w) == 3 and w.arrival_s.min() >= 5 and w.arrival_s.max() < 80


def test_speedup_and_rate_scale(tmp_path):
    rows = [HEADER] + [f"{i},ChatGPT,100,10,110,Conversation log" for i in range(0, 2000)]
    p = write(tmp_path, rows)
    base, _ = load_burstgpt(p, seed=0)
    fast, _ = load_burstgpt(p, seed=0, speedup=4.0)
    np.testing.assert_allclose(fast.arrival_s, base.arrival_s / 4.0)
    thin, r = load_burstgpt(p, seed=0, rate_scale=0.5)
    assert 900 < len(thin) < 1100 and r.thinned_or_copied == len(thin) - 2000
    dense, r = load_burstgpt(p, seed=0, rate_scale=2.5)
    assert 4800 < len(dense) < 5200 and np.all(np.diff(dense.arrival_s) >= 0)
    assert dense.arrival_s[-1] < 2001  # the time axis is unchanged


def test_tenant_map(tmp_path):
    p = write(tmp_path, [HEADER] + ROWS)
    gold = Tenant("gold", 100.0, 20.0, priority=3)
    rest = Tenant("rest", 1000.0, 100.0)
    w, r = load_burstgpt(p, tenant_map={("Conversation log", "GPT-4"): gold, "Conversation log": rest, "API log": rest})
    assert r.tenants == {"rest": 4, "gold": 1}
    with pytest.raises(ValueError, match="no tenant for Log Type 'API log'"):
        load_burstgpt(p, tenant_map={"Conversation log": rest})


@pytest.mark.parametrize("lines,line,fragment", [
    (["Timestamp,Model,Request tokens,Response tokens,Log Type", "5,ChatGPT,1,1,Conversation log"], 1,
     "missing column(s) ['Total tokens']"),
    ([HEADER, "5,ChatGPT,472,18,490,Conversation log", "7,ChatGPT,abc,18,490,Conversation log"], 3,
     "'Request tokens' has non-numeric value 'abc'"),
    ([HEADER, "5,ChatGPT,472,-3,490,Conversation log"], 2, "'Response tokens' has negative value '-3'"),
    ([HEADER, "9,ChatGPT,472,3,490,Conversation log", "5,ChatGPT,472,3,490,Conversation log"], 3, "goes back in time"),
    ([HEADER, "5,ChatGPT,47.5,3,490,Conversation log"], 2, "non-integer"),
])
def test_malformed_burstgpt_names_file_line_problem(tmp_path, lines, line, fragment):
    p = write(tmp_path, lines)
    with pytest.raises(TraceFormatError) as e:
        load_burstgpt(p)
    assert str(p) in str(e.value) and f"line {line}" in str(e.value) and fragment in str(e.value)
    assert e.value.line == line


def test_empty_and_header_only(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(TraceFormatError, match="empty"):
        load_burstgpt(empty)
    with pytest.raises(TraceFormatError, match="no data rows"):
        load_burstgpt(write(tmp_path, [HEADER], name="h.csv"))
    with pytest.raises(FileNotFoundError, match="no such trace file"):
        load_burstgpt(tmp_path / "missing.csv")


def test_bad_loader_options(tmp_path):
    p = write(tmp_path, [HEADER] + ROWS)
    for kw in ({"speedup": 0}, {"rate_scale": -1.0}, {"duration_s": 0}, {"start_s": -5}):
        with pytest.raises(ValueError, match=list(kw)[0]):
            load_burstgpt(p, **kw)


def test_azure_raw_form(tmp_path):
    p = write(tmp_path, ["TIMESTAMP,ContextTokens,GeneratedTokens",
                         "2023-11-16 18:15:46.6805900,374,44", "2023-11-16 18:15:50.9951690,396,109",
                         "2023-11-16 18:15:51.2224670,879,55"])
    w, r = load_azure(p)
    np.testing.assert_allclose(w.arrival_s, [0.0, 4.314579, 4.541877], atol=1e-6)
    assert list(w.prompt_tokens) == [374, 396, 879] and r.kept == 3
    bad = write(tmp_path, ["TIMESTAMP,ContextTokens,GeneratedTokens", "yesterday,1,1"], name="bad.csv")
    with pytest.raises(TraceFormatError, match="line 2.*not a date-time"):
        load_azure(bad)


def test_azure_processed_shared_hour(data_dir):
    w, r = load_azure(data_dir / "traces" / "azure_conv_2023_1h.csv")
    assert r.rows == 19366 == len(w)
    assert 3500 < w.arrival_s[-1] < 3503
    ia = np.diff(w.arrival_s)
    assert abs(ia.std() / ia.mean() - 1.09) < 0.01  # data/README.md: inter-arrival CV 1.09
    assert abs(w.prompt_tokens.mean() - 1155) < 1 and abs(w.output_tokens.mean() - 211) < 1
    w2, r2 = load_azure(data_dir / "traces" / "azure_conv_2023_1h.csv", start_s=600, duration_s=300, speedup=2.0)
    assert r2.kept == len(w2) and w2.arrival_s.max() < 150.0


# --------------------------------------------------------------- hostile files (each a regression case)
def test_encodings_and_compression_name_the_file(tmp_path):
    text = "\n".join([HEADER] + ROWS) + "\n"
    utf16 = tmp_path / "u16.csv"
    utf16.write_bytes(text.encode("utf-16"))
    latin1 = tmp_path / "l1.csv"
    latin1.write_bytes((HEADER + "\n5,Chät\xe9GPT,472,18,490,Conversation log\n").encode("latin-1"))
    for p in (utf16, latin1):
        with pytest.raises(TraceFormatError, match="UTF-8") as e:
            load_burstgpt(p)
        assert str(p) in str(e.value)
    import gzip
    from igym_marl.workloads import detect_format, get_task
    for name in ("z.csv", "z.csv.gz", "z.gz"):  # gzip is known by its magic number, whatever the name
        gz = tmp_path / name
        gz.write_bytes(gzip.compress(text.encode()))
        w, r = load_burstgpt(gz)
        assert r.rows == len(ROWS) and detect_format(gz) == "burstgpt"
        assert get_task("trace", path=gz, episode_windows=2).workload(0).tenants[0].name == "conversation"
    az = tmp_path / "a.csv.gz"
    az.write_bytes(gzip.compress(b"arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,10,5\n1.5,20,6\n"))
    for kw in ({}, {"format": "azure"}):
        t = get_task("trace", path=az, **kw)
        assert list(t.workload(0).prompt_tokens) == [10, 20]
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(text.encode())[:-20])
    with pytest.raises(TraceFormatError, match="broken.csv.gz: cannot be read"):
        load_burstgpt(broken)


def test_extra_field_huge_value_unknown_log_type_name_the_line(tmp_path):
    cases = [
        ([HEADER, ROWS[0], "45,ChatGPT,10,5,15,Conversation log,extra,more,fields"], 3, "fields"),
        ([HEADER, ROWS[0], "45,ChatGPT,100000000000000000000,5,15,Conversation log"], 3, "not a plausible token count"),
        ([HEADER, ROWS[0], "1000000000000000,ChatGPT,10,5,15,Conversation log"], 3, "not a plausible time stamp"),
        ([HEADER, ROWS[0], "45,ChatGPT,10,5,15,Batch log"], 3, "no tenant for Log Type 'Batch log'"),
    ]
    for i, (lines, line, fragment) in enumerate(cases):
        p = write(tmp_path, lines, name=f"c{i}.csv")
        with pytest.raises(TraceFormatError) as e:
            load_burstgpt(p)
        assert str(p) in str(e.value) and f"line {line}" in str(e.value) and fragment in str(e.value), str(e.value)


def test_parse_once_window_many(tmp_path):
    from igym_marl.workloads import parse_burstgpt, window
    p = write(tmp_path, [HEADER] + ROWS)
    parsed = parse_burstgpt(p)
    a, _ = window(parsed, start_s=40, duration_s=10, seed=3)
    b, _ = load_burstgpt(p, start_s=40, duration_s=10, seed=3)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    assert len(a) == 2  # the failed 0-response row at 45 s is dropped
    empty, rep = window(parsed, start_s=60, duration_s=10)
    assert len(empty) == 0 and [t.name for t in empty.tenants] == ["conversation", "api"] and rep.kept == 0


def _fuzz_outcome(tmp_path, data: bytes, name: str):
    p = tmp_path / name
    p.write_bytes(data)
    for loader in (load_burstgpt, load_azure):
        try:
            w, _ = loader(p)
        except TraceFormatError as e:
            assert str(p) in str(e)
        else:
            assert len(w) == w.arrival_s.shape[0] and (w.prompt_tokens >= 1).all() and (w.output_tokens >= 1).all()
            assert np.all(np.diff(w.arrival_s) >= 0)


def test_fuzz_random_bytes(tmp_path):
    from hypothesis import HealthCheck, given, settings, strategies as st

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.binary(min_size=1, max_size=600))
    def run(data):
        _fuzz_outcome(tmp_path, data, "rand.csv")
    run()


def test_fuzz_valid_looking_csvs(tmp_path):
    from hypothesis import HealthCheck, given, settings, strategies as st
    cell = st.one_of(st.integers(-5, 10**6).map(str), st.sampled_from(["", "x", "1e400", "nan", "-0", "3.5", " 7",
                                                                       "ChatGPT", "API log", "Conversation log",
                                                                       "2023-11-16 18:15:46.68", '"a,b"', "1e25"]))
    headers = st.sampled_from([HEADER, HEADER + ",Session ID,Elapsed time", "arrived_at,num_prefill_tokens,"
                               "num_decode_tokens", "TIMESTAMP,ContextTokens,GeneratedTokens"])

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(headers, st.lists(st.lists(cell, min_size=2, max_size=9), min_size=0, max_size=12))
    def run(header, rows):
        text = "\n".join([header] + [",".join(r) for r in rows]) + "\n"
        _fuzz_outcome(tmp_path, text.encode(), "valid_looking.csv")
    run()


def test_padding_and_long_lines_are_refused_at_their_line_with_a_short_message(tmp_path):
    """A valid head followed by megabytes of NUL padding, or one enormous line: the message quotes
    a bounded excerpt and names the line; the file is never read whole."""
    head = ("\n".join([HEADER] + ROWS) + "\n").encode()
    padded = tmp_path / "padded.csv"
    padded.write_bytes(head + b"\x00" * 20_000_000)
    long_line = tmp_path / "long.csv"
    long_line.write_bytes(head + b"5,ChatGPT," + b"9" * 5_000_000 + b",1,1,Conversation log\n")
    for p, line, fragment in ((padded, 8, "NUL byte"), (long_line, 8, "the line is longer than")):
        for loader in (load_burstgpt, load_azure):
            with pytest.raises(TraceFormatError) as e:
                loader(p)
            msg = str(e.value)
            assert len(msg) < 400 and f"line {line}" in msg and fragment in msg and str(p) in msg, msg[:500]


def test_bad_values_are_quoted_short_and_never_as_numpy_reprs(tmp_path):
    p = write(tmp_path, [HEADER, "10,ChatGPT,472,18,490,Conversation log", "9.5,ChatGPT,472,18,490,Conversation log"])
    with pytest.raises(TraceFormatError) as e:
        load_burstgpt(p)
    assert "Timestamp '9.5' goes back in time (previous row: '10')" in str(e.value) and "np." not in str(e.value)
    junk = "x" * 3000
    p = write(tmp_path, [HEADER, f"10,ChatGPT,{junk},18,490,Conversation log"], name="junk.csv")
    with pytest.raises(TraceFormatError) as e:
        load_burstgpt(p)
    assert len(str(e.value)) < 300 and "3,000 characters" in str(e.value)


def test_mixed_time_zones_name_the_file_and_line(tmp_path):
    p = write(tmp_path, ["TIMESTAMP,ContextTokens,GeneratedTokens", "2023-11-16 18:15:46+00:00,374,44",
                         "2023-11-16 18:15:50+00:00,396,109", "2023-11-16 18:15:51+02:00,879,55"])
    with pytest.raises(TraceFormatError) as e:
        load_azure(p)
    assert str(p) in str(e.value) and "line 4" in str(e.value) and "another time zone than line 2" in str(e.value)
    p = write(tmp_path, ["TIMESTAMP,ContextTokens,GeneratedTokens", "2023-11-16 18:15:46,374,44",
                         "2023-11-16 18:15:50+00:00,396,109"], name="naive.csv")
    with pytest.raises(TraceFormatError, match="line 3: TIMESTAMP .* another time zone than line 2"):
        load_azure(p)


def test_directories_and_fifos_are_refused_without_reading(tmp_path):
    import os
    from igym_marl.workloads import get_task
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for p, fragment in ((tmp_path, "is a directory"), (fifo, "not a regular file")):
        for call in (lambda: load_burstgpt(p), lambda: load_azure(p), lambda: get_task("trace", path=p)):
            with pytest.raises(TraceFormatError, match=fragment):
                call()
