"""Model families: everything that differs between models, behind two interfaces the engine, cache and runner use
without knowing the family. A family is picked by the checkpoint's config.json `model_type`.

An embedding family (`Family`: CLAP, PE-Audio) turns one clip into model inputs (alone, seeded: batch-invariant by
construction), a batch of those inputs into audio embeddings, texts into text embeddings, and embeddings into logits
and scores of its kind: `softmax` (over the candidate labels: CLAP) or `sigmoid` (each label on its own: PE-Audio,
SigLIP-style).

A scoring family (`ScoringFamily`: audio language models) has no embeddings: given one clip, an instruction and the
candidate answers, it returns one log-likelihood per answer, or its own answer as text (zsa_eval/families/alm.py).
The engine knows only which of the two kinds (`kind`) a family is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import torch

from zsa_eval.cache import weights_fingerprint
from zsa_eval.errors import UserError

Inputs = dict[str, torch.Tensor]


class ModelFamily(ABC):
    """A loaded model of one family, on its device, with its feature extractor and tokenizer."""

    name: ClassVar[str]
    kind: ClassVar[str]  # embedding | scoring
    model_types: ClassVar[tuple[str, ...]]  # config.json model_type values this family loads
    score_kind: ClassVar[str]  # softmax | sigmoid | answer
    score_description: ClassVar[str]  # metrics.json score_kind_description
    pipeline_supported: ClassVar[bool]  # transformers' zero-shot-audio-classification pipeline can run it

    def __init__(self, model: torch.nn.Module, feature_extractor, tokenizer, device: torch.device,
                 dtype: torch.dtype):
        """`model` as loaded from its checkpoint: fingerprinted as stored, then placed on `device` in `dtype`."""
        self.weight_fingerprint = weights_fingerprint(model)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.feature_extractor, self.tokenizer = feature_extractor, tokenizer
        self.device, self.dtype = device, dtype

    @property
    def sampling_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def window_seconds(self) -> float | None:
        """The longest audio the model takes in at once (long_audio's window); None: no window of its own."""
        return None

    @property
    def frame_seconds(self) -> float | None:
        """The shortest audio the featurizer turns into a frame (long_audio's floor for a window and a hop); None:
        not known."""
        return None

    def embedding_settings(self) -> dict:
        """The family's settings that shape an audio embedding (part of the cache key)."""
        return {}

    def decode_options(self) -> dict:
        """Keyword arguments of zsa_eval.audio.load_clip for this model's clips (how they are resampled)."""
        return {}

    def settings(self) -> dict:
        """All the family's settings that shape a score (recorded in metrics.json)."""
        return self.embedding_settings()


class Family(ModelFamily):
    """An embedding family: audio and text embeddings, compared."""

    kind = "embedding"

    @abstractmethod
    def preparer(self, device: torch.device) -> Callable[[np.ndarray, int], Inputs]:
        """A function: one mono clip at `sampling_rate` and its seed -> that clip's model inputs, on `device`."""

    @abstractmethod
    def collate(self, prepared: Sequence[Inputs]) -> Inputs:
        """The inputs of one batch from the clips' own inputs."""

    @abstractmethod
    def embed_audio(self, inputs: Inputs) -> list[torch.Tensor]:
        """One float32 audio embedding per clip of the batch, on the device (what the cache stores)."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """One float32 text embedding per text, in the family's scoring space."""

    @abstractmethod
    def combine_prompts(self, per_prompt: torch.Tensor) -> torch.Tensor:
        """(prompts, classes, dim) text embeddings -> one embedding per class."""

    @abstractmethod
    def logits(self, audio: Sequence[torch.Tensor], classifier: torch.Tensor) -> torch.Tensor:
        """(clips, classes) logits of the clips' audio embeddings against the class embeddings."""

    @abstractmethod
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores of the family's kind from logits."""

    def pool_windows(self, embeddings: Sequence[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
        """One clip's embedding from its windows' (long_audio=windows), `weights`: the audio each covers."""
        raise UserError(f"long_audio=windows cannot pool the windows of {self.name} models; use long_audio=native "
                        "or long_audio=center")

    def clip_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        """One vector per clip for save_embeddings (frame-level models pool their frames)."""
        return embedding

    def classifier(self, candidate_labels: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        """One text embedding per class, computed once: every prompt filled with every label, then combined."""
        per_prompt = [self.embed_texts([prompt.format(label) for label in candidate_labels]) for prompt in prompts]
        return self.combine_prompts(torch.stack(per_prompt))


def weighted_mean(embeddings: Sequence[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
    """The mean of `embeddings` weighted by `weights` (which need not sum to 1)."""
    shares = torch.tensor(weights, dtype=torch.float64)
    shares = (shares / shares.sum()).to(device=embeddings[0].device, dtype=embeddings[0].dtype)
    return (torch.stack(list(embeddings)) * shares[:, None]).sum(dim=0)


class ScoringFamily(ModelFamily):
    """A scoring family: a model asked about each clip (`instruction`, in its own chat format), scored by how likely
    it finds each candidate answer (`scoring` likelihood) or by the answer it writes (`scoring` generate)."""

    kind = "scoring"
    pipeline_supported = False
    scoring: str  # likelihood | generate

    @abstractmethod
    def preparer(self, instruction: str) -> Callable[[np.ndarray, int], Inputs]:
        """A function: one mono clip at `sampling_rate` and its seed -> the model inputs (on CPU) of the prompt that
        asks `instruction` about that clip, up to where the model's answer begins."""

    @abstractmethod
    def answer_tokens(self, answers: Sequence[str]) -> list[list[int]]:
        """Each answer's token ids as the model would write them after the prompt, its end-of-turn token last."""

    @abstractmethod
    def answer_log_likelihoods(self, inputs: Inputs, answers: Sequence[Sequence[int]]) -> torch.Tensor:
        """(answers,) float32: each answer's mean log-probability per token (answer_tokens) after one clip's prompt."""

    @abstractmethod
    def generate_answer(self, inputs: Inputs) -> str:
        """The model's greedy answer to one clip's prompt, as text."""
