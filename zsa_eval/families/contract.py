"""What a family must return, checked where zsa-eval calls it, for every family alike: embeddings as float32
tensors of the family's rank, one per clip or text, finite, of one dimension for audio and text; logits one per clip
and class. A family's exception is reported in one line naming the family and the method; inside a clip's
preparation it skips that clip (recorded), anywhere else it stops the run (what finished is kept: the run resumes).
`debug=true` shows the family's own traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch

from zsa_eval.errors import BadAudio, UserError

if TYPE_CHECKING:
    from zsa_eval.families import ModelFamily

MODEL_COULD_NOT_PREPARE = "model could not prepare"  # the skip reason of a clip the family's preparer refused


class FamilyFailed(UserError):
    """A family raised, or returned what the contract does not allow: the run stops."""


def family_label(family: ModelFamily | type) -> str:
    """`model family 'toy' (toy_family:ToyFamily)`: its name and where its class lives."""
    cls = family if isinstance(family, type) else type(family)
    return f"model family {getattr(cls, 'name', cls.__name__)!r} ({cls.__module__}:{cls.__qualname__})"


def first_line(error: BaseException) -> str:
    """`TypeError: message`, the message's first line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


@contextmanager
def calling(family: ModelFamily, method: str) -> Iterator[None]:
    """Turn an exception of the family's `method` into one line naming both (a UserError it raises, which names its
    own fix, passes as it is)."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        raise FamilyFailed(f"{family_label(family)} failed in {method}: {first_line(error)}") from error


def guarded_preparer(family: ModelFamily, prepare: Callable[[np.ndarray, int], dict]
                     ) -> Callable[[np.ndarray, int], dict]:
    """`prepare` (the family's preparer) with what it raises about a clip made that clip's skip record."""
    label = family_label(family)

    def prepare_clip(waveform: np.ndarray, seed: int) -> dict:
        try:
            return prepare(waveform, seed)
        except (BadAudio, UserError):
            raise
        except Exception as error:
            raise BadAudio(MODEL_COULD_NOT_PREPARE, f"{label}: {first_line(error)}") from error
    return prepare_clip


def fail(family: ModelFamily, method: str, problem: str, fix: str) -> FamilyFailed:
    return FamilyFailed(f"{family_label(family)}: {method} {problem}; {fix}")


def check_tensor(family: ModelFamily, method: str, value: object, rank: int, what: str) -> torch.Tensor:
    """`value` as the contract wants it: a finite float32 tensor of `rank` dimensions."""
    if not isinstance(value, torch.Tensor):
        raise fail(family, method, f"returned a {type(value).__name__} for {what}", "return torch tensors")
    if value.dtype != torch.float32:
        raise fail(family, method, f"returned {what} of dtype {value.dtype}", "return float32 tensors (.float())")
    if value.ndim != rank:
        raise fail(family, method, f"returned {what} of rank {value.ndim} (shape {tuple(value.shape)}) where rank "
                   f"{rank} is expected", "return one vector per clip or text" if rank < 3 else "fix the shape")
    if not torch.isfinite(value).all():
        raise fail(family, method, f"returned NaN or infinite values in {what}",
                   "check the model's weights and inputs (a float16 overflow, say)")
    return value


def check_dimension(family: ModelFamily, method: str, dim: int) -> None:
    """Audio and text embeddings share one dimension, the first the family returned."""
    if family.embedding_dim is None:
        family.embedding_dim, family.embedding_dim_from = dim, method
    elif dim != family.embedding_dim:
        raise fail(family, method, f"returned embeddings of dimension {dim}, where {family.embedding_dim_from} "
                   f"returned dimension {family.embedding_dim}", "audio and text embeddings must share one dimension")


def check_count(family: ModelFamily, method: str, returned: int, expected: int, unit: str) -> None:
    if returned != expected:
        got = "no embeddings" if returned == 0 else f"{returned} embeddings"
        raise fail(family, method, f"returned {got} for {expected} {unit}", f"return one embedding per {unit[:-1]}")


def checked_audio(family: ModelFamily, embeddings: object, count: int, method: str = "embed_audio"
                  ) -> list[torch.Tensor]:
    """The `count` audio embeddings of a batch, each of the family's `audio_rank`."""
    if not isinstance(embeddings, (list, tuple, torch.Tensor)):
        raise fail(family, method, f"returned a {type(embeddings).__name__}", "return a list of tensors, one per clip")
    embeddings = list(embeddings)
    check_count(family, method, len(embeddings), count, "clips")
    for embedding in embeddings:
        check_tensor(family, method, embedding, family.audio_rank, "an audio embedding")
        check_dimension(family, method, embedding.shape[-1])
    return embeddings


def checked_pooled(family: ModelFamily, embedding: object) -> torch.Tensor:
    """A clip's embedding pooled from its windows."""
    check_tensor(family, "pool_windows", embedding, family.audio_rank, "a clip's pooled embedding")
    check_dimension(family, "pool_windows", embedding.shape[-1])
    return embedding


def checked_texts(family: ModelFamily, embeddings: object, count: int, method: str = "embed_texts") -> torch.Tensor:
    """(count, dim) text embeddings."""
    check_tensor(family, method, embeddings, 2, "text embeddings")
    check_count(family, method, embeddings.shape[0], count, "texts")
    check_dimension(family, method, embeddings.shape[-1])
    return embeddings


def checked_logits(family: ModelFamily, logits: object, clips: int, classes: int, method: str = "logits"
                   ) -> torch.Tensor:
    """(clips, classes) finite logits or scores."""
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (clips, classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise fail(family, method, f"returned {shape} for {clips} clips and {classes} classes",
                   f"return a ({clips}, {classes}) tensor")
    if not torch.isfinite(logits).all():
        raise fail(family, method, "returned NaN or infinite values", "check the embeddings it compares")
    return logits


def checked_likelihoods(family: ModelFamily, values: object, count: int) -> torch.Tensor:
    """(count,) log-likelihoods, none NaN (a log-likelihood may be -inf)."""
    method = "answer_log_likelihoods"
    if not isinstance(values, torch.Tensor) or tuple(values.shape) != (count,):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise fail(family, method, f"returned {shape} for {count} answers", f"return a ({count},) tensor")
    if torch.isnan(values).any() or torch.isposinf(values).any():
        raise fail(family, method, "returned NaN or +inf", "return log-probabilities (at most 0)")
    return values


def checked_answer(family: ModelFamily, answer: object) -> str:
    if not isinstance(answer, str):
        raise fail(family, "generate_answer", f"returned a {type(answer).__name__}", "return the answer's text")
    return answer



def checked_loaded(cls: type[ModelFamily], family: object) -> ModelFamily:
    """What `cls.load` returned: an instance of `cls` with a sampling rate."""
    if not isinstance(family, cls):
        raise fail(cls, "load", f"returned a {type(family).__name__}", f"return an instance of {cls.__qualname__}")
    if "hashed_state" not in vars(family):
        raise fail(family, "__init__", "did not call ModelFamily.__init__",
                   "call super().__init__(device, dtype, model) in the family's constructor")
    rate = getattr(family, "sampling_rate", None)
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise fail(family, "sampling_rate", f"is {rate!r}", "set it to the rate the model hears, in Hz (e.g. 16000)")
    return family
