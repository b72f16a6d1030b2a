"""What a task returns, below both the tasks (which make them) and the views (which read and write them): the
metrics a run declares (MetricSpec), its results (TaskResults), the mistakes worth hearing (Mistake, Mistakes) and a
comparison of two runs (Comparison). Plain data with the methods that present it; nothing here knows a task."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class MetricSpec:
    """A metric a run reports (its value at `name` in metrics.json, its 95% interval at `<name>_ci95` when
    `interval`), the column title a leaderboard gives it, and which way is better. `shown`: in leaderboard.md too,
    not only in its CSV and JSON; `whole`: a whole number (a count such as top-k's k, or a median rank), shown as
    one."""

    name: str
    label: str
    higher_is_better: bool = True
    interval: bool = True
    shown: bool = True
    whole: bool = False

    def declared(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TaskResults:
    """What a task makes of the evaluated items: the metrics.json fields it owns, CSV tables and PNG figures (bytes),
    arrays written as .npy and tables as parquet (by relative path: embeddings/audio.npy, scores.parquet), and what
    it adds to metrics.json's provenance."""

    metrics: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    parquet: dict[str, pd.DataFrame] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Mistake:
    """An item a run got wrong, to listen to: its title (the item's or query's id), the clips to play, each as (what
    it is, its dataset position: the dataset's lazy `clips` read it again), and the fields to show (name -> text or
    number)."""

    title: str
    clips: tuple[tuple[str, int], ...]
    fields: dict[str, str | float | int]


@dataclass(frozen=True)
class Mistakes:
    """A run's mistakes worth hearing, worst first, and one sentence saying which they are."""

    description: str
    items: list[Mistake]


@dataclass(frozen=True)
class Comparison:
    """Run B against run A on what both evaluated: `n_a` and `n_b` what each run evaluated, `n_common` what both did
    (in `unit`s: "items", "clips", "queries (20 captions, 4 clips)"), the metric deltas, the bootstrap settings.
    Subclasses add their verdict, sections and files."""

    name_a: str
    name_b: str
    legend_a: str
    legend_b: str
    n_a: int
    n_b: int
    n_common: int
    unit: str
    metric_deltas: pd.DataFrame
    bootstrap: dict
    data_note: str = field(default="", kw_only=True)  # how the runs' data differ (other files, another selection)

    def verdict(self) -> str:
        """One sentence on the main difference: the first metric's delta and whether its interval excludes 0."""
        row = self.metric_deltas.iloc[0]
        excludes_zero = row["delta_ci95_low"] > 0 or row["delta_ci95_high"] < 0
        return (f"{row['metric']} B - A = {row['delta']:+.4f} (95% CI [{row['delta_ci95_low']:+.4f}, "
                f"{row['delta_ci95_high']:+.4f}]) on {self.n_common} common {self.unit}: the interval "
                f"{'excludes' if excludes_zero else 'includes'} 0.")

    def shown_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """The task's tables after the metrics, each under its heading (compare.md's sections, compare.html's)."""
        return []

    def sections(self) -> list[str]:
        """compare.md's task-specific sections after the metrics (Markdown lines): each shown table under its
        heading, "(none)" for an empty one."""
        lines = []
        for heading, table in self.shown_tables():
            lines += [f"## {heading}", "", table.to_markdown(index=False, floatfmt=".4f") if len(table) else "(none)",
                      ""]
        return lines

    def extra_summary(self) -> dict:
        """compare.json's task-specific fields."""
        return {}

    def tests(self) -> list[str]:
        """The task's tests of the difference, a sentence each (compare.html)."""
        return []

    def tables(self) -> dict[str, pd.DataFrame]:
        """CSV files (name without .csv -> table)."""
        return {}

    def figures(self) -> dict[str, bytes]:
        """PNG files (file name -> bytes)."""
        return {}

    def deltas_note(self) -> str:
        """What the metric table's deltas and intervals are."""
        bootstrap = self.bootstrap
        return (f"delta = B - A; paired bootstrap {bootstrap['level']:.0%} interval, {bootstrap['resamples']} "
                f"resamples, seed {bootstrap['seed']}")

    def markdown(self, title: str | None = None) -> str:
        """compare.md, headed `title` (default: the two run directories)."""
        return "\n".join([
            f"# {title or f'{self.name_a} vs {self.name_b}'}", "",
            f"A = {self.name_a}  ", self.legend_a, "",
            f"B = {self.name_b}  ", self.legend_b, "",
            f"Compared on the {self.n_common} {self.unit} both runs evaluated (A evaluated {self.n_a}, "
            f"B {self.n_b}).", "",
            *([f"**Note:** {self.data_note}", ""] if self.data_note else []),
            self.verdict(), "",
            f"## Metrics on the {self.n_common} common {self.unit} ({self.deltas_note()})", "",
            self.metric_deltas.to_markdown(index=False, floatfmt=".4f"), "",
            *self.sections(),
        ])

    def summary(self) -> dict:
        """compare.json."""
        return {
            "run_a": self.name_a, "run_b": self.name_b, "legend_a": self.legend_a, "legend_b": self.legend_b,
            "n_a": self.n_a, "n_b": self.n_b, "n_common": self.n_common, "data_note": self.data_note or None,
            "metrics": {row.metric: {"a": row.a, "b": row.b, "delta": row.delta,
                                     "delta_ci95": [row.delta_ci95_low, row.delta_ci95_high]}
                        for row in self.metric_deltas.itertuples()},
            **self.extra_summary(),
            "bootstrap": self.bootstrap,
        }
