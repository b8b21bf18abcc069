"""What Compare compares: selections, each one run or a group of repeats of one config.

The user picks runs, or whole groups of repeats (a config id); runs that share a config id (they
differ only in seed and name, core.search.repeats) become one selection, so five repeats of one
config are one mean line with a band, not five lines. Each selection gets a letter (A, B, C…):
the letters head the tables, so three long auto-names still fit side by side, and the verdicts
read "B beats A by …". The first selection is the reference every other one is tested against.

Pure functions on the Runs table (`RunStore.list_runs()`): nothing here reads the store or draws.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from core.search.repeats import REPEATABLE, config_ids, repeat_sets
from core.search.significance import summarize
from dashboard.format import dataset_label, duration_text, value_text

LETTERS = string.ascii_uppercase
_SEED = re.compile(r"\s*·\s*seed \d+")   # the auto-name's seed word ("mlp-128-64 · seed 43")
_NUMBER = re.compile(r"\s+#\d+$")        # the store's number for a taken name ("baseline #2")


@dataclass(frozen=True)
class Selection:
    """One column of Compare: a single run (`run_ids` of one) or the repeats of one config."""
    letter: str
    key: str                    # what the link holds: the run id, or the config id of a group
    name: str                   # the full name (a group: its members' shared name)
    run_ids: tuple[str, ...]    # newest first
    config_id: str

    @property
    def is_group(self) -> bool:
        return len(self.run_ids) > 1

    @property
    def label(self) -> str:
        """How charts and legends name it: "A · name" (and "×N" for a group)."""
        return f"{self.letter} · {self.name}" + (f" ×{len(self.run_ids)}" if self.is_group else "")


def group_name(names: Iterable[str]) -> str:
    """The name a group of repeats shares: their names without the seed word and the store's "#2"."""
    names = [str(n) for n in names]
    bases = list(dict.fromkeys(_NUMBER.sub("", _SEED.sub("", n)) for n in names))
    return bases[0] if len(bases) == 1 else names[0]


def options(runs: pd.DataFrame, labels: Mapping[str, str]) -> dict[str, str]:
    """What the picker offers: every config with two or more finished repeats ("name ×N seeds"),
    then every run. Returns key (config id or run id) -> its label."""
    names = dict(zip(runs["run_id"], runs["name"]))
    out = {cid: f"{group_name(names[r] for r in ids)} ×{len(ids)} seeds (group)" for cid, ids in repeat_sets(runs).items()}
    return {**out, **{rid: labels[rid] for rid in runs["run_id"]}}


def resolve(runs: pd.DataFrame, chosen: Iterable[str], group_repeats: bool = True) -> list[Selection]:
    """The selections `chosen` names, in the order chosen (the first is the reference).

    A config id stands for its finished repeats; a run id for that run, joined to the other
    chosen runs of its config when `group_repeats` is on. Unknown keys are left out.
    """
    frame = runs.assign(config_id=config_ids(runs).to_numpy()) if not runs.empty else runs.assign(config_id=None)
    by_run = frame.set_index("run_id")
    configs = set(frame["config_id"])
    members: dict[str, list[str]] = {}  # config id (grouping) or chosen key -> run ids
    for key in chosen:
        if key in by_run.index:
            cid, found = by_run.at[key, "config_id"], [key]
        elif key in configs:
            cid = key
            found = frame.loc[(frame["config_id"] == key) & frame["status"].isin(REPEATABLE), "run_id"].tolist()
        else:
            continue
        run_ids = members.setdefault(cid if group_repeats else key, [])
        run_ids += [r for r in found if r not in run_ids]
    out = []
    for run_ids in (ids for ids in members.values() if ids):
        run_ids = sorted(run_ids, key=lambda r: -by_run.at[r, "created_at"])  # newest first, as list_runs
        cid = by_run.at[run_ids[0], "config_id"]
        names = by_run.loc[run_ids, "name"]
        single = len(run_ids) == 1
        out.append(Selection(LETTERS[len(out) % 26], run_ids[0] if single else cid,
                             names.iloc[0] if single else group_name(names), tuple(run_ids), cid))
    return out


def legend(selections: list[Selection]) -> str:
    """The letters and full names as markdown, one line each, above the tables' letter headers."""
    return "  \n".join(f"**{s.letter}** = {s.name}" + (f" (×{len(s.run_ids)} seeds)" if s.is_group else "")
                       for s in selections)


def _mean_std(values: pd.Series, pattern: str = "{:.2f}%", scale: float = 100.0) -> str:
    """"98.12% ± 0.15 (N = 3)" for a group, "98.12%" for one value, "—" for none."""
    summary = summarize(pd.to_numeric(values, errors="coerce").tolist())
    if summary.n == 0:
        return "—"
    text = pattern.format(summary.mean * scale)
    return text if summary.n == 1 else f"{text} ± {summary.std * scale:.2f} (N = {summary.n})"


def summary_table(runs: pd.DataFrame, selections: list[Selection]) -> pd.DataFrame:
    """Compare's summary as text, one column per selection (its letter): mean ± std with N for a group."""
    by_run = runs.set_index("run_id")
    columns = {}
    for s in selections:
        rows = by_run.loc[list(s.run_ids)]
        statuses = rows["status"].value_counts()
        durations = pd.to_numeric(rows["duration"], errors="coerce").dropna()
        columns[s.letter] = {
            "runs": f"{len(rows)} (seeds {seeds_text(c.get('seed') for c in rows['config'])})" if s.is_group else "1",
            "status": ", ".join(f"{n} {k}" if s.is_group else k for k, n in statuses.items()),
            "test accuracy": _mean_std(rows["test_accuracy"]),
            "best val accuracy": _mean_std(rows["best_val_accuracy"]),
            "last val accuracy": _mean_std(rows["last_val_accuracy"]),
            "drawn-set accuracy": _mean_std(rows["drawn_accuracy"]),
            "duration": duration_text(float(durations.mean())) if len(durations) else "—",
            "parameters": value_text(pd.to_numeric(rows["n_params"], errors="coerce").iloc[0], "{:,.0f}"),
            "dataset": dataset_label(rows["dataset"].iloc[0], short=True) if "dataset" in rows else "—",
        }
    table = pd.DataFrame(columns)
    if not any(s.is_group for s in selections):  # one run each: "1" everywhere says nothing
        table = table.drop(index="runs")
    return table.rename_axis("result")


def seeds_text(seeds: Iterable[int | None]) -> str:
    """A group's seeds, sorted: "42–44" when consecutive, else "1, 7, 9"."""
    found = sorted(int(x) for x in seeds if x is not None)
    if len(found) > 2 and found == list(range(found[0], found[-1] + 1)):
        return f"{found[0]}–{found[-1]}"
    return ", ".join(map(str, found)) or "—"


def configs(runs: pd.DataFrame, selections: list[Selection]) -> dict[str, dict]:
    """Each selection's settings by letter (for "Settings that differ"): a group's seeds as one range."""
    by_run = runs.set_index("run_id")
    out = {}
    for s in selections:
        cfgs = [c if isinstance(c, Mapping) else {} for c in by_run.loc[list(s.run_ids), "config"]]
        seed = seeds_text(c.get("seed") for c in cfgs) if s.is_group else cfgs[0].get("seed")
        out[s.letter] = {**cfgs[0], "seed": seed}
    return out


def group_frame(runs: pd.DataFrame, selections: list[Selection], metrics: Iterable[str]) -> pd.DataFrame:
    """One row per selection for parallel coordinates: its first run's settings and each metric's mean."""
    by_run = runs.set_index("run_id")
    rows = []
    for s in selections:
        members = by_run.loc[list(s.run_ids)]
        row = members.iloc[0].to_dict()
        for metric in metrics:
            values = pd.to_numeric(members[metric], errors="coerce").dropna()
            row[metric] = float(values.mean()) if len(values) else np.nan
        rows.append({**row, "run_id": s.key, "name": s.label})
    return pd.DataFrame(rows)


def summed_confusion(matrices: Iterable[Iterable[Iterable[int]]]) -> list[list[int]] | None:
    """A group's confusion matrix: its runs' matrices added (None when none has one)."""
    found = [np.asarray(m, dtype=int) for m in matrices]
    return np.sum(found, axis=0).tolist() if found else None
