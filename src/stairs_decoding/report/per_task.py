"""Every method on every task, in the style of Spec-Bench: per_task.md (rows: methods at their best k; columns: the
tasks, each with the pair that ran it; cells: speed-up vs greedy with its 95 % CI, mean tokens per target call and
the k) and the figure per_task (the same speed-ups as bars with their CIs), from the runs of experiment=per_task_cpu
(config `report: per_task`)."""
from __future__ import annotations

from pathlib import Path

from . import style
from .runs import BASELINES, SPEC_METHODS, best_k, is_exact
from .tables import _blank, _ci, write_markdown

KIND = "per_task"


def make(group, out) -> list[Path]:
    rows = task_rows(group.summary)
    table = write_markdown(per_task_table(rows), out, "per_task")
    with open(table, "a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(f"- {line}" for line in [NOTE] + [length_limit_line(d) for d in group.dirs]) + "\n")
    return plot_per_task(rows, out, caption=style.runs_caption(group.summary)) + [table]


NOTE = ("Cells: speed-up vs greedy (greedy's total time over the method's on the same examples, in the same run) "
        "[paired bootstrap 95 % CI], τ = mean new tokens per target call, and the best k (chosen by the point "
        "estimate, so its CI is optimistic).")


def length_limit_line(run_dir) -> str:
    """How many of a run's greedy outputs stopped at max_new_tokens rather than at EOS (on a weak model, mostly
    repetition loops, which lookup copies from the output itself)."""
    from omegaconf import OmegaConf

    from ..run_files import read_records

    cfg = OmegaConf.load(Path(run_dir) / "config.yaml")
    limit = int(cfg.task.max_new_tokens)
    greedy = [r for r in read_records(Path(run_dir) / "results.jsonl") if r.method == "greedy"]
    hit = sum(r.new_tokens >= limit for r in greedy)
    return f"{cfg.task.name}: {hit} of {len(greedy)} greedy outputs reach max_new_tokens = {limit} (no EOS)."


def task_label(r) -> str:
    """A task's column heading: its name and the pair that ran it."""
    return f"{r['task']} ({r['pair']})"


def task_rows(summary):
    """Per task (one run each): transformers' greedy and every exact speculative method at its best k there."""
    import pandas as pd

    s = summary[summary["method"].map(is_exact)]
    base = s[s["method"].isin(BASELINES) & (s["method"] != "greedy")]
    rows = pd.concat([base, best_k(s[s["method"].isin(SPEC_METHODS)])], ignore_index=True)
    schedule = rows["schedule"].fillna("constant") if "schedule" in rows else "constant"
    return rows.assign(task_col=[task_label(r) for _, r in rows.iterrows()], schedule=schedule)


def row_keys(rows) -> list[tuple[str, str]]:
    """(method, schedule) of every row of the table, in registry order (a method's schedules in the runs' order)."""
    from ..methods import METHODS

    present = list(dict.fromkeys(zip(rows["method"], rows["schedule"])))
    return [key for m in METHODS for key in present if key[0] == m]


def row_label(key: tuple[str, str]) -> str:
    from ..methods import METHODS

    method, schedule = key
    return METHODS[method].label + ("" if schedule == "constant" else f", schedule={schedule}")


def _hit(rows, key, task):
    return rows[(rows["method"] == key[0]) & (rows["schedule"] == key[1]) & (rows["task_col"] == task)]


def _cell(r) -> str:
    ci = _ci(r, "speedup_ci95_low", "speedup_ci95_high")
    ci = f" {ci}" if ci else ""
    tpc = r.get("tokens_per_target_call")
    calls = "" if _blank(tpc) else f", τ {tpc:.2f}"
    k = f", k={int(r['k'])}" if r["method"] in SPEC_METHODS else ""
    return f"{r['speedup']:.2f}×{ci}{calls}{k}"


def per_task_table(rows):
    """Rows: methods (registry order); columns: tasks; cells: "speed-up [95 % CI], τ mean tokens per target call,
    k" — the speed-up is greedy's time over the method's on the same examples, in the same run."""
    import pandas as pd

    tasks = list(dict.fromkeys(rows["task_col"]))
    out = []
    for key in row_keys(rows):
        line = {"method": row_label(key)}
        for t in tasks:
            hit = _hit(rows, key, t)
            line[t] = _cell(hit.iloc[0]) if len(hit) else ""
        out.append(line)
    return pd.DataFrame(out)


def plot_per_task(rows, out_dir, *, caption: str, name: str = "per_task") -> list[Path]:
    """Horizontal bars: each method's speed-up vs greedy at its best k, one bar per task, with 95 % CIs; the
    dotted line is greedy."""
    tasks = list(dict.fromkeys(rows["task_col"]))
    keys = row_keys(rows)
    fig, axes = style.figure(1, 1, figsize=(9, 0.36 * len(keys) * len(tasks) + 1.6))
    ax = axes[0][0]
    height = 0.8 / len(tasks)
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    for j, t in enumerate(tasks):
        for i, key in enumerate(keys):
            hit = _hit(rows, key, t)
            if not len(hit):
                continue
            r = hit.iloc[0]
            method = key[0]
            y = i + (j - (len(tasks) - 1) / 2) * height
            ax.barh(y, r["speedup"], height=height * 0.9, color=colors[j % len(colors)],
                    xerr=style.err(hit, "speedup", "speedup_ci95_low", "speedup_ci95_high"), capsize=2,
                    label=t if i == 0 else None)
            end = r["speedup"] if _blank(r["speedup_ci95_high"]) else r["speedup_ci95_high"]
            k = f" (k={int(r['k'])})" if method in SPEC_METHODS else ""
            ax.text(end, y, f"   {r['speedup']:.2f}×{k}", va="center", fontsize=7)
    ax.set_yticks(range(len(keys)), [row_label(key) for key in keys])
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", lw=1, ls=":")
    ax.set_xlim(0, 1.2 * float(rows["speedup_ci95_high"].fillna(rows["speedup"]).max()))
    ax.set_xlabel("speed-up vs greedy in the same run (bars: 95 % CI), each method at its best k")
    ax.grid(axis="x", alpha=0.3)
    style.legend_below(ax, ncol=1)
    style.caption(fig, caption)
    return style.save_and_close(fig, out_dir, name)
