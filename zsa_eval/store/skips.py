"""A finished run's skips: the items that could not be evaluated (errors.csv) and the local folder's files that are
not items (ignored_files.csv), and the rule that fails a run whose items are bad at a rate above max_skip_fraction
beyond chance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from zsa_eval.errors import TooManySkips
from zsa_eval.store import write_run_file


def skipped_table(items: pd.DataFrame, records: dict[int, dict]) -> pd.DataFrame:
    """Every item that could not be evaluated (bad audio), from the log."""
    bad = [{"item_id": record["item_id"], "path": items["path"].iat[index], "reason": record["reason"],
            "detail": record["detail"]} for index, record in sorted(records.items()) if "reason" in record]
    return pd.DataFrame(bad, columns=["item_id", "path", "reason", "detail"])


def write_skips(items: pd.DataFrame, ignored_files: pd.DataFrame, records: dict[int, dict],
                output_dir: Path) -> pd.DataFrame:
    """errors.csv (the items that could not be evaluated) and ignored_files.csv (a folder's files that are not
    items); returns the skipped items."""
    errors = skipped_table(items, records)
    write_run_file(output_dir, "errors.csv", errors.to_csv(index=False))
    write_run_file(output_dir, "ignored_files.csv", ignored_files.to_csv(index=False))
    return errors


SKIP_RATE_CONFIDENCE = 0.975  # one-sided: the skip rate's lower bound a run is judged by


def skip_rate_lower_bound(n_skipped: int, n_items: int) -> float:
    """The one-sided 97.5% Clopper-Pearson lower bound of the rate at which this dataset's items are bad, from
    `n_skipped` of `n_items`: what the skips show beyond chance (0 when nothing was skipped)."""
    from scipy.stats import beta

    return float(beta.ppf(1 - SKIP_RATE_CONFIDENCE, n_skipped, n_items - n_skipped + 1)) if n_skipped else 0.0


def too_many_skips(n_skipped: int, n_items: int, max_skip_fraction: float) -> bool:
    """Whether the items are bad at a rate above max_skip_fraction beyond chance (the lower bound above it): one bad
    file of 20 (5%, bound 0.1%) or 3 of 20 (bound 3.2%) pass at 0.05, 4 of 20 (bound 5.7%) or 3 of 6 fail; at scale
    the bound nears the share itself (60 of 1000: 4.6%; 100 of 1000: 8.2%). max_skip_fraction=0 fails on any skip."""
    return n_skipped > 0 and skip_rate_lower_bound(n_skipped, n_items) > max_skip_fraction


def skip_status(n_skipped: int, n_items: int, max_skip_fraction: float) -> str:
    """metrics.json's status: too_many_skips when the items are bad above max_skip_fraction, else complete."""
    return "too_many_skips" if too_many_skips(n_skipped, n_items, max_skip_fraction) else "complete"


def check_skip_fraction(metrics: dict, max_skip_fraction: float, output_dir: Path) -> None:
    """After everything is written: items bad at a rate above max_skip_fraction fail the run (exit 2), pointing at
    the list."""
    n_skipped, n_items = metrics["n_skipped"], metrics["n_items"]
    if too_many_skips(n_skipped, n_items, max_skip_fraction):
        raise TooManySkips(f"{n_skipped} of {n_items} items ({n_skipped / n_items:.1%}) were skipped: items are bad "
                        f"at a rate above max_skip_fraction={max_skip_fraction} (at least "
                        f"{skip_rate_lower_bound(n_skipped, n_items):.1%}, 97.5% lower bound); the list is in "
                        f"{output_dir / 'errors.csv'} (results were written for the rest)", metrics)
