"""Model families: everything that differs between models, behind the interfaces the engine, cache, tasks and
long-audio policies use without knowing the family. This is zsa-eval's public family API (re-exported by
zsa_eval.api, versioned by zsa_eval.api.VERSION): zsa-eval's own families implement it as a user's do, and are
found the same way (entry points in the group `zsa_eval.families`, zsa_eval/families/registry.py).

Three kinds (`kind`), each a base class:

- `AudioEncoderFamily` (`audio_encoder`): audio embeddings only, no text tower. It serves the probes
  (protocol=linear_probe, protocol=few_shot without text_init); zero-shot and retrieval are refused.
- `Family` (`embedding`, also exported as `EmbeddingFamily`: CLAP, PE-Audio, MS-CLAP): an audio encoder plus a text
  tower in the same space; scores of its kind, `softmax` over the candidate labels or `sigmoid` (each label on its
  own, SigLIP-style).
- `ScoringFamily` (`scoring`: audio language models) has no embeddings: given one clip, an instruction and the
  candidate answers, it returns one log-likelihood per answer, or its own answer as text (zsa_eval/families/alm.py).

A family loads itself from the `model` config (`load(spec)`, spec: a `ModelSpec`) and says what shapes its cache
key (`cache_identity`: its name, `version`, a fingerprint of its weights or the user's `model.fingerprint`, its
settings). What it returns is checked (zsa_eval/families/contract.py): a wrong shape, dtype or value stops the run
with one line naming the family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from zsa_eval.cache import weights_fingerprint
from zsa_eval.errors import UserError
from zsa_eval.families.contract import checked_texts

Inputs = dict[str, torch.Tensor]
AUDIO_EMBEDDING_KINDS = ("embedding", "audio_encoder")  # the kinds whose audio embeddings the cache and probes use


def weights_state(model: torch.nn.Module | None) -> tuple:
    """Which tensors a module holds and how often each was changed in place (torch counts it): cheap to take, and
    different once a weight was trained, loaded into or replaced."""
    if model is None:
        return ()
    return tuple((name, id(tensor), tensor._version)
                 for name, tensor in (*model.named_parameters(), *model.named_buffers()))


@dataclass(frozen=True)
class ModelSpec:
    """The `model` config as a family's `load` receives it: where the weights are, where to run them, and the
    settings. `settings` holds zsa-eval's own model keys (max_seconds, scoring, short_clip_fusion, ...: those the
    built-in families read), `options` the family's own (`model.options.*`, free-form), `fingerprint` the user's
    name for the weights (`model.fingerprint`: the cache key uses it instead of a hash of the weights)."""

    name: str
    name_or_path: str | None
    device: torch.device
    dtype: torch.dtype
    revision: str | None = None
    trust_remote_code: bool = False
    online: bool = True  # the Hugging Face Hub may be asked; False: local files and the local cache only
    settings: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    def hub_options(self) -> dict:
        """Keyword arguments for transformers' and huggingface_hub's from_pretrained."""
        return {"revision": self.revision, "trust_remote_code": self.trust_remote_code,
                "local_files_only": not self.online}


class ModelFamily(ABC):
    """A loaded model of one family, on its device, in its dtype.

    A subclass sets `name` (the family's name in metrics.json and messages), `version` (bump it when a change to
    the family's code changes what it computes: the cache key holds it) and implements `load`. Its constructor
    calls `ModelFamily.__init__` with the device, dtype and the torch module (fingerprinted, then moved and put in
    eval mode) or a fingerprint of its own."""

    name: ClassVar[str]
    kind: ClassVar[str]  # audio_encoder | embedding | scoring
    version: ClassVar[str] = "1"
    model_types: ClassVar[tuple[str, ...]] = ()  # config.json model_type values this family loads (model=auto)
    score_kind: ClassVar[str] = "softmax"  # softmax | sigmoid | answer
    score_description: ClassVar[str] = "softmax over the candidate labels of the audio-text logits"
    pipeline_supported: ClassVar[bool] = False  # transformers' zero-shot-audio-classification pipeline can run it
    embedding_dim: int | None = None  # learnt from the first embeddings the family returns (contract.py) ...
    embedding_dim_from: str | None = None  # ... and the method that returned them

    def __init__(self, device: torch.device, dtype: torch.dtype, model: torch.nn.Module | None = None,
                 fingerprint: str | None = None):
        """`model` as loaded from its checkpoint: fingerprinted as stored (unless `fingerprint` names the weights),
        then placed on `device` in `dtype`, in eval mode. A family without a torch module (a remote model, say)
        gives `fingerprint`, or has no cache."""
        self.device, self.dtype = device, dtype
        self.given_fingerprint = fingerprint
        self.hashed_fingerprint = weights_fingerprint(model) if model is not None and not fingerprint else None
        self.model = model.to(device=device, dtype=dtype).eval() if model is not None else None
        self.hashed_state = weights_state(self.model)

    @property
    def weight_fingerprint(self) -> str | None:
        """The user's fingerprint, else the hash of the weights as loaded, hashed again once they have changed in
        place (a model trained between two zsa_eval.evaluate calls: its embeddings are not the cached ones)."""
        if self.given_fingerprint or self.model is None:
            return self.given_fingerprint
        state = weights_state(self.model)
        if state != self.hashed_state:
            self.hashed_fingerprint, self.hashed_state = weights_fingerprint(self.model), state
        return self.hashed_fingerprint

    @classmethod
    @abstractmethod
    def load(cls, spec: ModelSpec) -> ModelFamily:
        """The family's model as `spec` names it, on spec.device in spec.dtype; a UserError (one line, the fix
        named) when it cannot be loaded."""

    @classmethod
    def claims(cls, spec: ModelSpec) -> bool:
        """Whether spec.name_or_path is this family's though it has no config.json to say so (a bare weights file):
        model=auto asks each family."""
        return False

    @property
    def sampling_rate(self) -> int:
        """The rate clips are decoded and resampled to (a subclass may set a class attribute instead)."""
        return int(self.feature_extractor.sampling_rate)

    @property
    def window_seconds(self) -> float | None:
        """The longest audio the model takes in at once (long_audio's window); None: no window of its own."""
        return None

    @property
    def long_clips_heard(self) -> str:
        """How a clip longer than the window is heard under long_audio=native, in a few words (metrics.json
        `long_audio`, the summary line, report.html)."""
        return "heard the model's own way"

    @property
    def frame_seconds(self) -> float | None:
        """The shortest audio the featurizer turns into a frame (long_audio's floor for a window and a hop); None:
        not known."""
        return None

    @property
    def revision(self) -> str | None:
        """The checkpoint's commit, when it came from the Hub (metrics.json's model_revision)."""
        return getattr(getattr(self.model, "config", None), "_commit_hash", None)

    def embedding_settings(self) -> dict:
        """The family's settings that shape an audio embedding (part of the cache key)."""
        return {}

    def decode_options(self) -> dict:
        """Keyword arguments of zsa_eval.audio.load_clip for this model's clips (how they are resampled)."""
        return {}

    def settings(self) -> dict:
        """All the family's settings that shape a score (recorded in metrics.json)."""
        return self.embedding_settings()

    def cache_identity(self) -> dict | None:
        """Everything besides the clip that shapes an audio embedding (hashed into the cache key): the family and
        its version, the model's class and weights, where and in what precision it runs, its feature extractor and
        settings. None (nothing is cached): no weights fingerprint to key on."""
        if self.weight_fingerprint is None:
            return None
        feature_extractor = getattr(self, "feature_extractor", None)
        return {"family": self.name, "version": self.version,
                "model_class": type(self.model).__name__ if self.model is not None else None,
                "weights": self.weight_fingerprint, "device": self.device.type, "dtype": str(self.dtype),
                "feature_extractor": feature_extractor.to_dict() if hasattr(feature_extractor, "to_dict") else None,
                "settings": self.embedding_settings()}


class AudioEncoderFamily(ModelFamily):
    """An audio encoder: one embedding per clip, no text tower. Probes train on its embeddings; zero-shot scoring
    and retrieval, which need text embeddings, are refused. Its `logits` (the few-shot prototype classifier's) are
    cosine similarities, its scores their softmax, unless it says otherwise."""

    kind = "audio_encoder"
    audio_rank: int = 1  # the dimensions of one clip's audio embedding: 1, or 2 for (frames, dim)

    @abstractmethod
    def preparer(self, device: torch.device) -> Callable[[np.ndarray, int], Inputs]:
        """A function: one mono float32 clip at `sampling_rate` and its seed -> that clip's model inputs, on
        `device` (alone, seeded: batch-invariant by construction). It runs in DataLoader workers; what it raises
        skips that clip (recorded in errors.csv), and zsa_eval.errors.BadAudio names the reason."""

    @abstractmethod
    def collate(self, prepared: Sequence[Inputs]) -> Inputs:
        """The inputs of one batch from the clips' own inputs."""

    @abstractmethod
    def embed_audio(self, inputs: Inputs) -> list[torch.Tensor]:
        """One float32 audio embedding per clip of the batch, on the device (what the cache stores): 1-D, or (frames,
        dim) for a frame-level model; the same dimension for every clip."""

    def pool_windows(self, embeddings: Sequence[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
        """One clip's embedding from its windows' (long_audio=windows), `weights`: the audio each covers (e.g.
        `weighted_mean`). The default refuses: a family says how its windows pool."""
        raise UserError(f"long_audio=windows cannot pool the windows of {self.name} models; use long_audio=native "
                        "or long_audio=center")

    def clip_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        """One vector per clip for save_embeddings and the probes (frame-level models pool their frames)."""
        return embedding

    def logits(self, audio: Sequence[torch.Tensor], classifier: torch.Tensor) -> torch.Tensor:
        """(clips, classes) logits of the clips' audio embeddings against class embeddings (`classifier`)."""
        return torch.nn.functional.normalize(torch.stack(list(audio)), dim=-1) \
            @ torch.nn.functional.normalize(classifier, dim=-1).T

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores of the family's kind (`score_kind`) from logits."""
        return logits.softmax(dim=-1)


class Family(AudioEncoderFamily):
    """An embedding family: audio and text embeddings in one space, compared."""

    kind = "embedding"

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(texts, dim) float32 text embeddings, in the family's scoring space, on the device."""

    @abstractmethod
    def combine_prompts(self, per_prompt: torch.Tensor) -> torch.Tensor:
        """(prompts, classes, dim) text embeddings -> (classes, dim): one embedding per class."""

    @abstractmethod
    def logits(self, audio: Sequence[torch.Tensor], classifier: torch.Tensor) -> torch.Tensor:
        """(clips, classes) logits of the clips' audio embeddings against the class embeddings."""

    @abstractmethod
    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores of the family's kind from logits."""

    def classifier(self, candidate_labels: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        """One text embedding per class, computed once: every prompt filled with every label, then combined."""
        per_prompt = [checked_texts(self, self.embed_texts([prompt.format(label) for label in candidate_labels]),
                                    len(candidate_labels)) for prompt in prompts]
        return checked_texts(self, self.combine_prompts(torch.stack(per_prompt)), len(candidate_labels),
                             "combine_prompts")


EmbeddingFamily = Family


def weighted_mean(embeddings: Sequence[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
    """The mean of `embeddings` weighted by `weights` (which need not sum to 1)."""
    shares = torch.tensor(weights, dtype=torch.float64)
    shares = (shares / shares.sum()).to(device=embeddings[0].device, dtype=embeddings[0].dtype)
    return (torch.stack(list(embeddings)) * shares[:, None]).sum(dim=0)


class ContrastiveFamily(Family):
    """An embedding family of the CLIP kind: normalized audio and text embeddings compared by cosine similarity
    times a learnt scale (`logit_scale`, the exponentiated one), softmax over the candidate labels; prompts and
    windows averaged as directions (normalized, averaged, renormalized)."""

    @abstractmethod
    def logit_scale(self) -> torch.Tensor:
        """The factor cosine similarities are multiplied by (CLIP's exp(logit_scale)), a float32 scalar."""

    def combine_prompts(self, per_prompt: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(per_prompt.mean(dim=0), dim=-1)

    def logits(self, audio: Sequence[torch.Tensor], classifier: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(audio)) @ classifier.T * self.logit_scale()

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=-1)

    def pool_windows(self, embeddings: Sequence[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
        """The windows' normalized embeddings averaged, weighted by the audio each covers, renormalized: the
        direction their cosine similarities are taken in."""
        normalized = [torch.nn.functional.normalize(embedding, dim=-1) for embedding in embeddings]
        return torch.nn.functional.normalize(weighted_mean(normalized, weights), dim=-1)


class ScoringFamily(ModelFamily):
    """A scoring family: a model asked about each clip (`instruction`, in its own chat format), scored by how likely
    it finds each candidate answer (`scoring` likelihood) or by the answer it writes (`scoring` generate)."""

    kind = "scoring"
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
