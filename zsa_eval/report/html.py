"""The HTML pages of the results (a run's report.html, leaderboard.html, compare.html): what they share. Pages are
rendered by Jinja2 from the templates in zsa_eval/report/templates, autoescaped (a label, caption or path holding
`<script>` shows as text); each holds its styles and one small table-sorting script inline and reads nothing from
the network: figures are inline PNGs, clips are FLAC files in a `report_assets/` folder beside the page."""

from __future__ import annotations

import base64
import io
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import soundfile as sf
from jinja2 import Environment, PackageLoader, StrictUndefined

from zsa_eval.audio import AudioSource, load_clip
from zsa_eval.errors import BadAudio
from zsa_eval.store import atomic_write

ASSETS_DIR = "report_assets"
CLIP_RATE = 16000   # clips are written mono at this rate ...
CLIP_SECONDS = 30   # ... and at most this long (a longer clip's start)


@dataclass(frozen=True)
class Clip:
    """A clip for a player: what it is (`label`), its file relative to the page, or why there is none (`problem`)."""

    label: str
    file: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, the key it sorts by (numbers by value), and a link or a clip to play."""

    text: str
    sort: str = ""
    number: bool = False
    href: str | None = None
    clip: Clip | None = None


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Cell]]


def shown(value: object) -> str:
    """A value as a page shows it: empty for missing, floats to 4 decimals, anything else as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_, numbers.Integral)):
        return f"{float(value):.4f}"
    return str(value)


def family_label(identity: dict) -> str:
    """The model family, with an audio language model's scoring mode (runs apart only by it are told apart):
    `qwen2_audio (generate)`."""
    scoring = identity.get("family_settings", {}).get("scoring")
    family = identity.get("family", "clap")
    return f"{family} ({scoring})" if scoring else family


def tested_count(metrics: dict) -> int | None:
    """The items a run's metrics cover: a probe's tested clips (`n_tested`), else every evaluated item."""
    return metrics.get("n_tested", metrics.get("n_evaluated"))


BOOTSTRAP_KIND, T_KIND = "bootstrap", "t"  # how interval_kind begins: a bootstrap interval, a t-interval over draws


def is_over_draws(metrics: dict) -> bool:
    """Whether a run's `<metric>_ci95` are t-intervals of a mean over draws of shots (a few-shot run), not bootstrap
    intervals over its items."""
    return "bootstrap" not in metrics and bool(metrics.get("repeats"))


def bootstrap_units(metrics: dict) -> str:
    """What a run's metrics cover (a bootstrap resamples them): `40 clips`, a probe's `8 tested clips`, or a retrieval
    run's queries of each direction (`30 + 6 queries`: text to audio + audio to text)."""
    if "t2a_n_queries" in metrics:
        return f"{metrics['t2a_n_queries']} + {metrics.get('a2t_n_queries')} queries"
    return f"{tested_count(metrics)} {'tested ' if 'n_tested' in metrics else ''}clips"


def interval_kind(metrics: dict) -> str:
    """Which interval a run's metrics carry, in a few words (the leaderboard's `interval` column): `t over 3 draws on 8
    tested clips` (a few-shot run, the same clips every draw; one draw: `none (1 draw on ...)`), else `bootstrap over
    40 clips` (a probe's tested clips, or a retrieval run's queries)."""
    if metrics.get("intervals"):  # a run that says which intervals it has (protocol=mteb: none)
        return metrics["intervals"]
    clips = bootstrap_units(metrics)
    if is_over_draws(metrics):
        return f"{T_KIND} over {metrics['repeats']} draws on {clips}" if metrics["repeats"] > 1 \
            else f"none (1 draw on {clips})"
    return f"{BOOTSTRAP_KIND} over {clips}"


def interval_description(metrics: dict) -> str:
    """Which interval a run's metrics carry, in a sentence (a report's metrics heading)."""
    if metrics.get("intervals"):
        return metrics["intervals"]
    if is_over_draws(metrics):
        if metrics["repeats"] < 2:
            return "none: a single draw of shots has no spread to take an interval from"
        return (f"95% t-intervals of the mean over {metrics['repeats']} draws of shots, every draw tested on the same "
                f"{tested_count(metrics)} clips: how much a figure moves with other shots, not with other test clips")
    resamples = (metrics.get("bootstrap") or {}).get("resamples")
    directions = " (text to audio + audio to text)" if "t2a_n_queries" in metrics else ""
    return (f"95% bootstrap intervals over the {bootstrap_units(metrics)}{directions}"
            + (f", {resamples} resamples" if resamples else ""))


def cell(value: object) -> Cell:
    """A plain value's cell (a Cell or a Clip as it is)."""
    if isinstance(value, Cell):
        return value
    if isinstance(value, Clip):
        return Cell(value.label, value.label, clip=value)
    is_number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and shown(value) != ""
    return Cell(shown(value), repr(float(value)) if is_number else shown(value), number=is_number)


def table(frame: pd.DataFrame, links: dict[str, list[str | None]] | None = None) -> Table:
    """A table of a DataFrame's cells (missing values empty); `links`: per column, each row's link (relative to the
    page, unquoted) or None."""
    values = frame.astype(object).where(frame.notna(), None)
    rows = [[cell(value) for value in row] for row in values.itertuples(index=False)]
    for column, hrefs in (links or {}).items():
        at = list(frame.columns).index(column)
        for row, href in zip(rows, hrefs):
            row[at] = Cell(row[at].text, row[at].sort, row[at].number, quote(href)) if href else row[at]
    return Table([str(column) for column in frame.columns], rows)


def png_data_uri(png: bytes) -> str:
    """A PNG inline in the page (a page moved or mailed keeps its figures)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_title(file_name: str) -> str:
    """"confusion_matrix.png" -> "confusion matrix"."""
    return Path(file_name).stem.replace("_", " ")


@cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("zsa_eval.report", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(template: str, **context) -> str:
    """A page from its template (autoescaped)."""
    return environment().get_template(template).render(**context)


def write_beside(page_dir: Path) -> Callable[[str, bytes], None]:
    """A writer of files relative to `page_dir` (folders made as needed)."""
    def write(name: str, payload: bytes) -> None:
        (page_dir / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(page_dir / name, payload)
    return write


class ClipFiles:
    """Clips decoded again (zsa_eval.audio, as the run decoded them) and written once each, mono at 16 kHz and at
    most 30 s, as FLAC into `page_dir/report_assets/` (`write_file`: how a file relative to `page_dir` is written,
    e.g. recorded as a run's); a clip that cannot be decoded again keeps its reason."""

    def __init__(self, page_dir: Path, write_file: Callable[[str, bytes], None] | None = None):
        self.page_dir = page_dir
        self.write_file = write_file or write_beside(page_dir)
        self.written: dict[str, Clip] = {}

    def clip(self, key: str, label: str, source: AudioSource) -> Clip:
        """The player of `source`, written as `<key>.flac` the first time it is asked for."""
        if key not in self.written:
            self.written[key] = self.write(key, source)
        found = self.written[key]
        return Clip(label, found.file, found.problem)

    def write(self, key: str, source: AudioSource) -> Clip:
        try:
            samples = load_clip(source, CLIP_RATE)[:CLIP_RATE * CLIP_SECONDS]
        except BadAudio as error:
            return Clip(key, problem=f"could not be decoded again ({error})")
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(samples, -1.0, 1.0), CLIP_RATE, format="FLAC", subtype="PCM_16")
        name = f"{ASSETS_DIR}/{key}.flac"
        self.write_file(name, buffer.getvalue())
        return Clip(key, name)

    @property
    def undecodable(self) -> list[str]:
        """The keys of the clips that could not be decoded again."""
        return [key for key, clip in self.written.items() if clip.problem]


CLIP_FILES = "clip-*.flac"  # the names ClipFiles' callers give clips


def remove_page(page: Path) -> None:
    """Remove a page and the clips written beside it (before it is written again, or when writing it failed): only
    files named as zsa-eval names them, and their folder if that leaves it empty."""
    page.unlink(missing_ok=True)
    folder = page.parent / ASSETS_DIR
    for clip in folder.glob(CLIP_FILES):
        clip.unlink()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
