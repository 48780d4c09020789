"""The summary behind every table and figure (summary.summary_rows), on hand-made records whose answers are known."""
import math

import pytest

from stairs_decoding import timing
from stairs_decoding.records import SCHEMA, Cell, Record
from stairs_decoding.report import best_k
from stairs_decoding.summary import clean, format_table, summary_rows


def rec(ex, method, k, seconds, *, accepted=(), rejections=0, alpha=None, tokens=(1, 2, 3), draft_calls=0,
        draft_seconds=0.0, target_calls=3, target_seconds=0.3, output="a b c"):
    return Record(example_id=str(ex), method=method, k=k, seconds=seconds, new_tokens=len(tokens),
                  tokens=list(tokens), accepted=list(accepted), rejections=rejections, alpha_requested=alpha,
                  draft_calls=draft_calls, draft_seconds=draft_seconds, target_calls=target_calls,
                  target_seconds=target_seconds, output=output, reference="a b c", matches_greedy=True,
                  model="m", draft="d", task="t", device="cpu")


def test_speed_up_is_the_ratio_of_total_seconds_paired_by_example():
    records = [rec(0, "greedy", 0, 1.0), rec(1, "greedy", 0, 3.0),
               rec(0, "stairs_cached", 2, 0.5, accepted=[2, 1], rejections=1),
               rec(1, "stairs_cached", 2, 2.0, accepted=[0, 2], rejections=1),
               rec(2, "stairs_cached", 2, 9.0, accepted=[1], rejections=0)]   # no greedy on example 2: not paired
    rows = {(r["method"], r["k"]): r for r in summary_rows(records, cost_ratio_c=0.25)}
    g, s = rows["greedy", 0], rows["stairs_cached", 2]
    assert s["speedup"] == pytest.approx((1.0 + 3.0) / (0.5 + 2.0))          # 1.6, not the mean of ratios (1.75)
    assert s["time_reduction_pct"] == pytest.approx(37.5)
    assert g["speedup"] == 1.0 and g["time_reduction_pct"] == 0.0 and g["bound_speedup"] == 1.0
    assert s["alpha"] == pytest.approx(6 / (6 + 2))                          # pooled: accepted / (accepted + rej)
    assert s["mean_accepted"] == pytest.approx(6 / 5)
    a = 6 / 8
    assert s["bound_speedup"] == pytest.approx((1 - a ** 3) / ((1 - a) * (2 * 0.25 + 1)))
    assert s["n"] == 3 and s["median_s"] == 2.0
    assert math.isnan(g["alpha"]) and math.isnan(g["cost_ratio_c"]) and s["cost_ratio_c"] == 0.25


def test_confidence_interval_is_the_t_interval_of_the_mean():
    xs = [1.0, 2.0, 4.0, 5.0]
    records = [rec(i, "greedy", 0, x) for i, x in enumerate(xs)]
    row = summary_rows(records, cost_ratio_c=math.nan)[0]
    mean, sd = 3.0, (sum((x - 3.0) ** 2 for x in xs) / 3) ** 0.5
    half = timing.t975(3) * sd / 2
    assert row["mean_s"] == mean and row["ci95_low"] == pytest.approx(mean - half)
    assert row["ci95_high"] == pytest.approx(mean + half) and timing.t975(3) == pytest.approx(3.182446305)


def test_cells_are_kept_apart_by_requested_alpha_and_greedy_repeats_are_averaged():
    records = [rec(0, "greedy", 0, 2.0), rec(0, "greedy", 0, 4.0),           # two greedy runs: mean 3.0
               rec(0, "stairs", 2, 1.0, alpha=0.5, accepted=[1], rejections=1),
               rec(0, "stairs", 2, 2.0, alpha=0.9, accepted=[2], rejections=0)]
    rows = summary_rows(records, cost_ratio_c=0.1)
    assert [(r["method"], r["alpha_requested"]) for r in rows] == [("greedy", None), ("stairs", 0.5), ("stairs", 0.9)]
    assert rows[1]["speedup"] == pytest.approx(3.0) and rows[2]["speedup"] == pytest.approx(1.5)
    assert rows[1]["bound_speedup_requested_alpha"] == pytest.approx((1 - 0.5 ** 3) / (0.5 * 1.2))
    assert "alpha req." in format_table(clean(rows)) and "alpha req." not in format_table(clean(rows[:1]))


def test_best_k_is_the_largest_speed_up_not_the_lowest_median():
    import pandas as pd

    records = [rec(i, "greedy", 0, 2.0) for i in range(3)]
    # k=2 has the lowest median (1.0) but one slow example; k=4 has the lower total, so the larger speed-up
    times = {1: (1.5, 1.5, 1.5), 2: (1.0, 1.0, 4.0), 4: (1.2, 1.2, 1.2)}
    records += [rec(i, "stairs_cached", k, t[i]) for k, t in times.items() for i in range(3)]
    df = pd.DataFrame(clean(summary_rows(records, cost_ratio_c=0.2)))
    df["pair"] = "m ← d"
    best = best_k(df)
    assert best[["method", "k"]].values.tolist() == [["stairs_cached", 4]]
    assert float(df[df.k == 2].median_s.iloc[0]) < float(df[df.k == 4].median_s.iloc[0])
    # summaries of two runs concatenated without a fresh index (repeated row labels): still one row per group
    two = pd.concat([df, df.assign(model="other")])
    assert sorted(best_k(two)[["model", "k"]].values.tolist()) == [["m", 4], ["other", 4]]


def test_speed_up_interval_is_a_paired_bootstrap_over_examples():
    # Method time = greedy time / 2 on every example: every resample's ratio is exactly 2, so the interval is [2, 2].
    records = [rec(i, "greedy", 0, g) for i, g in enumerate((1.0, 3.0, 5.0, 2.0))]
    records += [rec(i, "stairs_cached", 2, g / 2, accepted=[2, 2], rejections=0)   # α = 1: bound 3/(2c+1) ≥ 2
                for i, g in enumerate((1.0, 3.0, 5.0, 2.0))]
    s = summary_rows(records, cost_ratio_c=0.25, cost_ratio_ci=(0.2, 0.3))[1]
    assert s["speedup_ci95_low"] == pytest.approx(2.0) and s["speedup_ci95_high"] == pytest.approx(2.0)
    assert s["time_reduction_ci95_low"] == pytest.approx(50.0)
    # Unpaired noise: the interval is wide and contains the point value; a cell far above its bound is flagged.
    noisy = [rec(i, "greedy", 0, 1.0) for i in range(6)]
    noisy += [rec(i, "stairs_cached", 2, t, accepted=[0], rejections=1) for i, t in enumerate((0.1, 0.9, 0.2, 0.8,
                                                                                               0.1, 0.9))]
    n = summary_rows(noisy, cost_ratio_c=0.25, cost_ratio_ci=(0.2, 0.3))[1]
    assert n["speedup_ci95_low"] < n["speedup"] < n["speedup_ci95_high"]
    assert n["alpha"] == 0.0 and n["bound_ci95_high"] == pytest.approx(1 / (2 * 0.2 + 1))   # α=0: 1/(kc+1) at c low
    assert n["above_bound"] and not s["above_bound"]
    assert summary_rows(records[:1] + records[4:5], cost_ratio_c=0.25)[1]["speedup_ci95_low"] != \
        summary_rows(records[:1] + records[4:5], cost_ratio_c=0.25)[1]["speedup_ci95_low"]   # n=1: NaN


def test_records_round_trip_and_old_schema_reads_with_defaults():
    r = rec(0, "stairs", 3, 1.0, alpha=0.7)
    assert Record.from_dict(r.to_dict()) == r and r.schema == SCHEMA
    old = {"example_id": 5, "method": "greedy", "k": None, "seconds": 1.0, "new_tokens": 2, "tokens": [1, 2],
           "some_removed_field": 1}
    back = Record.from_dict(old)
    assert back.schema == 1 and back.k == 0 and back.example_id == "5" and back.alpha_requested is None
    assert Cell("stairs", 3, 0.7).key("5") == back.key()[:1] + ("stairs", 3, 0.7, 1, "constant", 0.0)
    assert Cell("stairs", 3, 0.7).label == "stairs@k=3,alpha=0.7" and Cell("greedy").label == "greedy"


def test_console_table_names_the_mean_and_keeps_methods_that_are_not_exact_apart():
    """The time column is the mean (the statistic the speed-up is built from) and says so; the draft alone sits
    below the exact methods under its own heading, without speed-up or time reduction; no column is empty in every
    row."""
    from stairs_decoding.summary import NOT_EXACT_HEADING

    records = [rec(i, "greedy", 0, t) for i, t in enumerate((1.0, 3.0))]
    records += [rec(i, "stairs_cached", 2, t, accepted=[1], rejections=1) for i, t in enumerate((0.5, 2.5))]
    records += [rec(i, "draft_greedy", 0, t) for i, t in enumerate((0.2, 0.4))]
    rows = clean(summary_rows(records, cost_ratio_c=0.25))
    text = format_table(rows)
    exact, _, apart = text.partition(NOT_EXACT_HEADING)
    header = exact.splitlines()[0]
    assert "mean s/ex" in header and "median" not in text
    assert "1.5000" in exact and "2.0000" in exact                     # the means (the medians are the same here)
    assert "draft_greedy" in apart and "draft_greedy" not in exact
    apart_header = apart.strip().splitlines()[0]
    assert "speed-up" not in apart_header and "time red." not in apart_header and "mean s/ex" in apart_header
    assert "alpha req." not in header and "tok/call" in header         # all empty: left out; filled: kept
    assert "speed-up = greedy's total seconds" in text


def test_every_summary_column_has_a_meaning_and_the_docs_are_generated():
    """summary_columns.COLUMNS covers every column of every committed summary.csv and of a freshly computed
    summary, run_files.SUMMARY_COLUMNS is its order, and docs/summary_columns.md is what the generator writes."""
    from pathlib import Path

    import pandas as pd

    from stairs_decoding import summary_columns
    from stairs_decoding.run_files import SUMMARY_COLUMNS

    root = Path(__file__).resolve().parents[1]
    meanings = summary_columns.COLUMNS
    assert SUMMARY_COLUMNS == list(meanings) and all(t.strip() for t in meanings.values())
    committed = sorted(root.glob("results/*/summary.csv"))
    assert committed
    for path in committed:
        assert not [c for c in pd.read_csv(path).columns if c not in meanings], path
    records = [rec(0, "greedy", 0, 1.0), rec(0, "stairs", 2, 0.5, accepted=[1], rejections=1, alpha=0.5)]
    fresh = summary_rows(records, cost_ratio_c=0.2)
    assert not [c for r in fresh for c in r if c not in meanings]
    assert (root / "docs" / "summary_columns.md").read_text(encoding="utf-8") == summary_columns.markdown()


def test_a_compressed_results_file_reads_and_continues_as_the_plain_one(tmp_path):
    """A committed run may keep results.jsonl gzip-compressed (results.jsonl.gz, to stay small): it reads as the
    plain file, and continuing the run restores the plain file and appends to it."""
    import gzip

    from stairs_decoding.run_files import ResultsWriter, has_results, read_results

    path = tmp_path / "results.jsonl"
    rows = [{"example_id": f"e{i}", "method": "greedy", "k": 0, "alpha_requested": None} for i in range(3)]
    with ResultsWriter(path) as w:
        for r in rows:
            w.write(r)
    (tmp_path / "results.jsonl.gz").write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    assert has_results(path) and read_results(path) == rows
    with ResultsWriter(path) as w:
        assert len(w.done) == 3
        w.write({**rows[0], "example_id": "e3"})
    assert not (tmp_path / "results.jsonl.gz").exists() and len(read_results(path)) == 4
