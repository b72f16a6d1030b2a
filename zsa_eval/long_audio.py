"""What a model hears of a clip longer than its window (`long_audio=`, conf/long_audio/), stated and recorded.

Each family has a window, the audio it takes in at once (`Family.window_seconds`: CLAP 10 s, PE-Audio
`model.max_seconds`). A policy splits a decoded clip into spans of it before the family prepares them:

- `native`: the whole clip, to the family's own preprocessing (CLAP: the fused view of the whole clip and three
  random 10 s crops, or one random crop; PE-Audio: its first `max_seconds`).
- `windows`: consecutive windows of the window's length, `hop_s` apart (the last one may be short: the family pads
  it as it pads any short clip), at most `max_windows` of them (the clip's first ones); the windows' embeddings are
  pooled into one by the family (`Family.pool_windows`), weighted by the audio each covers.
- `center`: the one window at the clip's centre.

A clip no longer than the window is one span, the whole clip, whatever the policy. Every clip's record says how many
windows make up its embedding, whether it was longer than the window and whether `max_windows` cut it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zsa_eval.errors import UserError
from zsa_eval.text import counted

if TYPE_CHECKING:
    from zsa_eval.families import ModelFamily

POLICIES = ("native", "windows", "center")
POLICY_KEYS = {"native": (), "center": ("window_s",), "windows": ("window_s", "hop_s", "max_windows")}  # what each takes


def check_engine_policy(engine: str, policy: str) -> None:
    """transformers' pipeline featurizes each whole clip itself: it hears only `native`."""
    if engine == "pipeline" and policy != "native":
        raise UserError(f"long_audio={policy} needs engine=embed: transformers' pipeline hears each clip as the "
                        "model's feature extractor takes it (long_audio=native)")


def check_family_policy(family: ModelFamily, policy: str) -> None:
    """A scoring family (an audio language model) scores each clip as its processor takes it: it hears only
    `native`, having no embedding to pool over windows."""
    if family.kind == "scoring" and policy != "native":
        raise UserError(f"long_audio={policy}: {family.name} models hear each clip whole (up to their own limit) and "
                        "score it; they have no embedding to pool over windows: use long_audio=native")


@dataclass(frozen=True)
class Windowing:
    """How one clip of `samples` samples was split: the spans (start, stop) the family prepares and encodes, whether
    the clip was longer than the window and whether `max_windows` dropped some of its windows."""

    samples: int
    spans: tuple[tuple[int, int], ...]
    longer: bool
    capped: bool

    @property
    def weights(self) -> list[int]:
        """The audio each span covers, in samples (a short last window's padding does not count)."""
        return [stop - start for start, stop in self.spans]

    def record(self) -> dict:
        """The clip's progress-log fields, which the run's counts are summed from (resumed and sharded runs too)."""
        return {"windows": len(self.spans), "longer": self.longer, "capped": self.capped}


@dataclass(frozen=True)
class LongAudio:
    """A policy resolved for one model: window and hop in samples at its sampling rate (`window` None: a family
    without a window, under `native`)."""

    policy: str
    sampling_rate: int
    window: int | None
    hop: int | None = None
    max_windows: int | None = None

    def split(self, samples: int) -> Windowing:
        """The spans of a clip of `samples` samples under this policy."""
        longer = self.window is not None and samples > self.window
        if not longer or self.policy == "native":
            return Windowing(samples, ((0, samples),), longer, False)
        if self.policy == "center":
            start = (samples - self.window) // 2
            return Windowing(samples, ((start, start + self.window),), True, False)
        needed = math.ceil((samples - self.window) / self.hop) + 1  # the last one reaches the clip's end
        kept = needed if self.max_windows is None else min(needed, self.max_windows)
        spans = tuple((number * self.hop, min(number * self.hop + self.window, samples)) for number in range(kept))
        return Windowing(samples, spans, True, kept < needed)

    def seconds(self, samples: int | None) -> float | None:
        return None if samples is None else samples / self.sampling_rate

    def settings(self) -> dict:
        """The policy in the terms a reader compares runs by (seconds): metrics.json, the run identity and the
        cache key."""
        settings = {"policy": self.policy, "window_s": self.seconds(self.window)}
        if self.policy == "windows":
            settings |= {"hop_s": self.seconds(self.hop), "max_windows": self.max_windows}
        return settings

    def identity(self) -> dict:
        """What the run identity and the embedding-cache key add: nothing for `native` (the embeddings of every
        earlier version), else the settings."""
        return {} if self.policy == "native" else {"long_audio": self.settings()}

    def counts(self, records: Sequence[dict], heard: str) -> dict:
        """metrics.json's `long_audio`: the settings, and over the evaluated clips' records how many clips were longer
        than the window, how many windows make up their embeddings, how many of those this run encoded (the rest came
        from the cache) and how many clips `max_windows` cut; under `native`, how the model hears a longer clip
        (`heard`: its family's words)."""
        return self.settings() | ({"long_clips_heard": heard} if self.policy == "native" else {}) | {
            "n_clips_longer": sum(bool(record.get("longer")) for record in records),
            "n_windows": sum(record.get("windows", 0) for record in records),
            "n_windows_encoded": sum(record.get("windows", 0) for record in records if not record.get("cached")),
            "n_clips_capped": sum(bool(record.get("capped")) for record in records),
        }


def check_at_least_a_frame(name: str, seconds: float, frame_s: float | None, model_name: str) -> None:
    """A window or hop shorter than the model's featurizer frame (`frame_s`: its FFT window, or its feature hop)
    would encode windows of almost no audio, by the hundreds of thousands."""
    if frame_s is not None and seconds < frame_s:
        raise UserError(f"long_audio.{name}={seconds:g} is shorter than one {frame_s:.4g} s frame of model "
                        f"{model_name}'s features; use long_audio.{name}={frame_s:.4g} or more (null: the model's "
                        "window)")


def long_audio_policy(settings: Mapping, family_window_s: float | None, sampling_rate: int,
                      model_name: str, frame_s: float | None = None) -> LongAudio:
    """The checked config group `long_audio` resolved for a model whose window is `family_window_s` (None: it has
    none) and whose features are made of `frame_s` frames (None: not known); a window or hop that cannot work is
    one line naming the fix."""
    policy = settings["name"]
    if policy == "native":
        return LongAudio(policy, sampling_rate, samples_of(family_window_s, sampling_rate))
    window_s = settings.get("window_s") or family_window_s
    if window_s is None:
        raise UserError(f"long_audio={policy} needs a window: model {model_name} has no window of its own; set "
                        "long_audio.window_s=SECONDS (the longest audio the model takes at once)")
    if family_window_s is not None and window_s > family_window_s:
        raise UserError(f"long_audio.window_s={window_s:g} is longer than the {family_window_s:g} s model "
                        f"{model_name} hears at once; use long_audio.window_s={family_window_s:g} or less "
                        "(null: the model's own)")
    check_at_least_a_frame("window_s", window_s, frame_s, model_name)
    window = samples_of(window_s, sampling_rate)
    if policy == "center":
        return LongAudio(policy, sampling_rate, window)
    hop_s = settings.get("hop_s") or window_s
    if hop_s > window_s:
        raise UserError(f"long_audio.hop_s={hop_s:g} is longer than the {window_s:g} s window: the audio between "
                        f"windows would go unheard; use long_audio.hop_s={window_s:g} or less (null: the window)")
    check_at_least_a_frame("hop_s", hop_s, frame_s, model_name)
    hop = samples_of(hop_s, sampling_rate)
    if hop < 1:
        raise UserError(f"long_audio.hop_s={hop_s:g} is shorter than one sample at {sampling_rate} Hz; use a hop of "
                        f"at least {1 / sampling_rate:.2g} s")
    return LongAudio(policy, sampling_rate, window, hop, settings.get("max_windows"))


def samples_of(seconds: float | None, sampling_rate: int) -> int | None:
    return None if seconds is None else int(round(seconds * sampling_rate))


def long_clips_text(long_audio: dict | None) -> str:
    """What a run's long clips came to (metrics.json `long_audio`), for the summary line and report.html: nothing
    when no clip was longer than the window under `native`."""
    if not long_audio or long_audio["window_s"] is None:
        return ""
    policy, longer = long_audio["policy"], long_audio["n_clips_longer"]
    if policy == "native" and not longer:
        return ""
    heard = (long_audio.get("long_clips_heard", "heard the model's own way") if policy == "native"
             else f"{counted(long_audio['n_windows_encoded'], 'window')} encoded")
    capped = (f", {long_audio['n_clips_capped']} cut to max_windows={long_audio['max_windows']}"
              if long_audio.get("n_clips_capped") else "")
    window_s = long_audio["window_s"]
    return f"long_audio={policy}: {counted(longer, 'clip')} longer than the {window_s:g} s window, {heard}{capped}"


def summary_note(long_audio: dict | None) -> str:
    """What the summary line says of long clips, in parentheses (long_clips_text)."""
    text = long_clips_text(long_audio)
    return f" ({text})" if text else ""
