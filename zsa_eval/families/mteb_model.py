"""mteb's audio models as a zsa-eval family (`model=mteb model.name=<mteb model name>`): the model is loaded by mteb
itself (`mteb.get_model_meta(name)`, its loader, its pinned revision) and its audio embeddings are what mteb's own
`encode` returns for each clip, so a MAEB model is evaluated with zsa-eval's data, tasks, probes, cache and reports.

- Audio-only models (modalities without text) are audio encoders: the probes. Audio-text models (CLAP, MS-CLAP,
  Wav2CLIP, ...) are embedding families: their text side is mteb's `encode` of the texts, and their logits are
  mteb's own `similarity` (the ModelMeta's similarity_fn_name: cosine or dot), as mteb scores zero-shot.
- `model.name_or_path` (default: model.name, mteb's Hub checkpoint) may name a local folder holding the same files:
  mteb's wrapper for `model.name` loads it (`model_name` goes to from_pretrained, which ignores the revision there).
  `model.revision` replaces mteb's pinned one; `model.options` are keyword arguments of mteb's loader.
- Each clip reaches mteb's wrapper as a float32 array at the wrapper's own rate (`sampling_rate`): zsa-eval decodes
  and resamples (soxr), mteb's collator then leaves it as it is and applies its own length cap.
- Batch invariance: when the model loads, its embeddings of five probe clips of unequal lengths
  (zsa_eval.families.invariance) are computed alone and in one batch; where they differ by more than 1e-5 of their
  scale, every clip is encoded alone (a warning, and `clip_by_clip: true` in metrics.json's family settings).
- mteb's audio wrappers need torchaudio (mteb's `audio` extra); without it loading is one line saying so.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

import numpy as np
import torch

from zsa_eval.cache import weights_fingerprint
from zsa_eval.errors import UserError
from zsa_eval.families import (AudioEncoderFamily, ContrastiveFamily, Family, Inputs, ModelFamily, ModelSpec,
                               weighted_mean)
from zsa_eval.families.invariance import probe_clips
from zsa_eval.integrations import import_mteb

FEATURE = "model=mteb"
INVARIANCE_RTOL = 1e-5  # the largest change of a clip's embedding in a batch, relative to the embeddings' scale
EXAMPLES = ("laion/clap-htsat-unfused", "facebook/wav2vec2-base", "MIT/ast-finetuned-audioset-10-10-0.4593")
RATE_ATTRIBUTES = ("sampling_rate", "AUDIO_SAMPLING_RATE", "target_sampling_rate")  # where mteb's wrappers keep it
HF_SPLIT, HF_SUBSET = "test", "default"  # what encode is told it is encoding (mteb wrappers ignore it for audio)


def audio_model_names(mteb: ModuleType) -> list[str]:
    """The names of mteb's models that take audio."""
    return sorted(meta.name for meta in mteb.get_model_metas() if "audio" in (meta.modalities or []))


def audio_model_meta(mteb: ModuleType, name: str, revision: str | None):
    """mteb's ModelMeta of `name` (at `revision`, when given); one line for a name mteb does not know, a model that
    takes no audio or one mteb has no implementation of."""
    try:
        meta = mteb.get_model_meta(name)
    except KeyError:
        names = audio_model_names(mteb)
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.4) or \
            [known for known in names if name.lower().split("/")[-1] in known.lower()][:5]
        hint = f"close matches: {', '.join(close)}" if close else f"its audio models include {', '.join(EXAMPLES)}"
        raise UserError(f"model.name={name} is not one of mteb {mteb.__version__}'s models; {hint} "
                        "(mteb.get_model_metas() lists them all)") from None
    if "audio" not in (meta.modalities or []):
        raise UserError(f"mteb's model {name} takes {', '.join(meta.modalities or ['no'])} input, not audio: "
                        f"model=mteb evaluates mteb's audio models (e.g. {', '.join(EXAMPLES)})")
    if meta.loader is None:
        raise UserError(f"mteb {mteb.__version__} has no implementation of {name} (its ModelMeta has no loader): "
                        "choose another of its audio models")
    return meta.model_copy(update={"revision": revision}) if revision else meta


def load_wrapper(meta, name_or_path: str, device: torch.device, loader_options: dict):
    """mteb's wrapper of `meta`'s model, loaded by mteb (ModelMeta.load_model: its requirements checked, its
    loader_kwargs and `loader_options` passed) from `name_or_path` (its Hub checkpoint, or a local folder)."""
    located = meta if name_or_path == meta.name else meta.model_copy(update={"name": name_or_path})
    try:
        wrapper = located.load_model(device=str(device), **loader_options)
    except ImportError as error:  # mteb's own lines naming what a model needs and the extra (torchaudio: mteb[audio])
        said = " ".join(line.strip() for line in str(error).splitlines()[:2]).replace(name_or_path, meta.name)
        raise UserError(f"{FEATURE} model.name={meta.name}: {said}") from error
    wrapper.mteb_model_meta = wrapper.mteb_model_meta.model_copy(update={"name": meta.name})  # not the folder's
    return wrapper


def wrapper_modules(wrapper) -> torch.nn.ModuleDict:
    """The torch modules mteb's wrapper holds (its weights: fingerprinted for the cache key)."""
    return torch.nn.ModuleDict({name: value for name, value in sorted(vars(wrapper).items())
                                if isinstance(value, torch.nn.Module)})


def wrapper_rate(wrapper, name: str) -> int:
    """The sampling rate mteb's wrapper hears (clips are resampled to it before they reach the wrapper)."""
    for attribute in RATE_ATTRIBUTES:
        rate = getattr(wrapper, attribute, None)
        if isinstance(rate, int) and rate > 0:
            return rate
    raise UserError(f"mteb's wrapper for {name} ({type(wrapper).__name__}) does not say its sampling rate "
                    f"(none of {', '.join(RATE_ATTRIBUTES)}): model=mteb cannot feed it clips")


def task_metadata(mteb: ModuleType, modalities: Sequence[str]):
    """What mteb's wrapper is told it encodes for: an audio (zero-shot) classification task of zsa-eval's."""
    return mteb.TaskMetadata(
        name="zsa_eval", description="clips and label prompts zsa-eval evaluates", dataset={"path": "zsa-eval",
                                                                                             "revision": "local"},
        type="AudioZeroshotClassification" if "text" in modalities else "AudioClassification",
        modalities=list(modalities), category="a2t" if "text" in modalities else "a2a", main_score="accuracy",
        eval_splits=[HF_SPLIT], eval_langs=["zxx-Zxxx"], reference=None, date=None, domains=None, task_subtypes=None,
        license=None, annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation=None)


def as_tensor(array, device: torch.device) -> torch.Tensor:
    """An (n, dim) array mteb returned (numpy or torch) as float32 on `device`."""
    return torch.as_tensor(np.asarray(array.cpu() if isinstance(array, torch.Tensor) else array),
                           dtype=torch.float32).to(device)


class MtebAudioFamily(AudioEncoderFamily):
    """One of mteb's audio models through its own wrapper (an audio encoder: the probes)."""

    name = "mteb"
    version = "1"
    score_description = "softmax of mteb's similarity of the model (its ModelMeta's: cosine or dot) of the embeddings"

    def __init__(self, wrapper, mteb: ModuleType, spec: ModelSpec):
        modules = wrapper_modules(wrapper)
        parameter = next((tensor for tensor in modules.parameters() if tensor.is_floating_point()), None)
        dtype = parameter.dtype if parameter is not None else torch.float32
        if spec.dtype not in (torch.float32, dtype):
            raise UserError(f"{FEATURE} runs mteb's wrapper of {spec.name} in the precision it loads itself "
                            f"({dtype}): leave precision=fp32 (the default)")
        fingerprint = spec.fingerprint or (weights_fingerprint(modules) if len(modules) else None)
        super().__init__(spec.device, dtype, None, fingerprint)
        self.wrapper, self.meta = wrapper, wrapper.mteb_model_meta
        self.from_hub = spec.name_or_path == self.meta.name
        self.rate = wrapper_rate(wrapper, spec.name)
        self.mteb_version = mteb.__version__
        self.metadata = task_metadata(mteb, ["audio", "text"] if "text" in self.meta.modalities else ["audio"])
        self.clip_by_clip = False
        self.batch_deviation = self.measure_batch_invariance()
        if self.batch_deviation > INVARIANCE_RTOL:
            self.clip_by_clip = True
            print(f"zsa-eval: warning: mteb's {self.meta.name} is not batch-invariant (a clip's embedding moves by "
                  f"{self.batch_deviation:.2g} of the embeddings' scale in a batch of unequal lengths): encoding each "
                  "clip alone", file=sys.stderr)

    @classmethod
    def load(cls, spec: ModelSpec) -> MtebAudioFamily:
        """mteb's model `spec.name` from spec.name_or_path; an audio-text model as an embedding family."""
        mteb = import_mteb(FEATURE)
        meta = audio_model_meta(mteb, spec.name, spec.revision)
        wrapper = load_wrapper(meta, spec.name_or_path or meta.name, spec.device, dict(spec.options))
        chosen = MtebAudioTextFamily if "text" in meta.modalities else MtebAudioFamily
        return chosen(wrapper, mteb, spec)

    @property
    def sampling_rate(self) -> int:
        return self.rate

    @property
    def revision(self) -> str | None:
        """The Hub revision mteb loaded (None for a local folder)."""
        return self.meta.revision if self.from_hub else None

    def embedding_settings(self) -> dict:
        """mteb's model, revision, wrapper and version (part of the cache key), and whether clips go alone."""
        wrapper = type(self.wrapper)
        return {"mteb_model": self.meta.name, "mteb_revision": self.revision, "mteb_version": self.mteb_version,
                "wrapper": f"{wrapper.__module__}:{wrapper.__qualname__}",
                "loader_kwargs": {key: value for key, value in self.meta.loader_kwargs.items() if key != "device"},
                "similarity": self.similarity_name,
                "clip_by_clip": self.clip_by_clip}

    def settings(self) -> dict:
        return self.embedding_settings() | {"batch_deviation": float(self.batch_deviation)}

    def measure_batch_invariance(self) -> float:
        """The largest change of a probe clip's embedding between alone and in one batch of unequal lengths,
        relative to the largest embedding value."""
        clips = probe_clips(self, seed=0)
        alone = torch.cat([self.encode([clip]) for clip in clips])
        batched = self.encode(clips[::-1]).flip(0)
        return float((batched - alone).abs().max() / alone.abs().max().clamp(min=1e-12))

    def encode(self, clips: Sequence[np.ndarray]) -> torch.Tensor:
        """mteb's wrapper's `encode` of float32 clips at its rate, given as mteb's evaluators give a dataset's audio
        (a DataLoader of one batch over an `audio` column of arrays)."""
        from datasets import Dataset
        from mteb._create_dataloaders import create_dataloader

        rows = [{"array": np.asarray(clip, dtype=np.float32), "sampling_rate": self.sampling_rate} for clip in clips]
        dataset = Dataset.from_dict({"audio": rows}).with_format("numpy")
        loader = create_dataloader(dataset, task_metadata=self.metadata, input_column="audio", batch_size=len(rows))
        return as_tensor(self.wrapper.encode(loader, task_metadata=self.metadata, hf_split=HF_SPLIT,
                                             hf_subset=HF_SUBSET, show_progress_bar=False), self.device)

    def preparer(self, device: torch.device) -> Callable[[np.ndarray, int], Inputs]:
        """The clip as it is: mteb's wrapper featurizes it."""

        def prepare(waveform: np.ndarray, seed: int) -> Inputs:
            return {"waveform": torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))}
        return prepare

    def collate(self, prepared: Sequence[Inputs]) -> Inputs:
        """The clips zero-padded to the longest, with their lengths (embed_audio cuts the padding off again)."""
        waveforms = [clip["waveform"] for clip in prepared]
        return {"waveforms": torch.nn.utils.rnn.pad_sequence(waveforms, batch_first=True),
                "lengths": torch.tensor([len(waveform) for waveform in waveforms])}

    def embed_audio(self, inputs: Inputs) -> list[torch.Tensor]:
        """mteb's embeddings of the batch's clips (in one call, or one call per clip when batching changes them)."""
        clips = [waveform[:length].cpu().numpy() for waveform, length in zip(inputs["waveforms"], inputs["lengths"])]
        if self.clip_by_clip:
            return [self.encode([clip])[0] for clip in clips]
        return list(self.encode(clips))

    def logits(self, audio: Sequence[torch.Tensor], classifier: torch.Tensor) -> torch.Tensor:
        """mteb's own similarity of the model (its ModelMeta's similarity_fn_name), as its zero-shot evaluator
        scores."""
        similarity = self.wrapper.similarity(torch.stack(list(audio)).cpu().numpy(), classifier.cpu().numpy())
        return as_tensor(similarity, self.device)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=-1)

    def pool_windows(self, embeddings: Sequence[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
        """The windows' embeddings averaged, weighted by the audio each covers (directions, for a cosine model)."""
        if self.cosine:
            return weighted_mean([torch.nn.functional.normalize(embedding, dim=-1) for embedding in embeddings],
                                 weights)
        return weighted_mean(embeddings, weights)

    @property
    def similarity_name(self) -> str | None:
        """The ModelMeta's similarity_fn_name (cosine, dot, ...; None: the wrapper's own, else cosine)."""
        name = self.meta.similarity_fn_name
        return getattr(name, "value", name)

    @property
    def cosine(self) -> bool:
        return self.similarity_name in ("cosine", None)


class MtebAudioTextFamily(MtebAudioFamily, Family):
    """One of mteb's audio-text models: texts embedded by its wrapper too, compared by its similarity."""

    score_description = "softmax over the candidate labels of mteb's similarity (cosine or dot) of audio and text"

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """mteb's wrapper's `encode` of the texts, as mteb's zero-shot evaluator encodes candidate labels."""
        from mteb._create_dataloaders import _create_dataloader_from_texts

        loader = _create_dataloader_from_texts(list(texts), batch_size=len(texts))
        return as_tensor(self.wrapper.encode(loader, task_metadata=self.metadata, hf_split=HF_SPLIT,
                                             hf_subset=HF_SUBSET, show_progress_bar=False), self.device)

    def combine_prompts(self, per_prompt: torch.Tensor) -> torch.Tensor:
        """The prompts' mean (of directions, for a cosine model): one prompt is its embedding as it is."""
        if len(per_prompt) == 1:
            return per_prompt[0]
        return (torch.nn.functional.normalize(per_prompt, dim=-1) if self.cosine else per_prompt).mean(dim=0)


def mteb_similarity(family: ModelFamily) -> str:
    """How the family's scores rank audio against text, as mteb names it: cosine for CLIP-kind families and audio
    encoders (whose logits are cosine similarities), else the dot product (PE-Audio's logits: a positive scale times
    it, plus a bias); an mteb model (model=mteb), its own ModelMeta's."""
    if isinstance(family, MtebAudioFamily):
        return family.similarity_name or "cosine"
    return "cosine" if isinstance(family, ContrastiveFamily) or family.kind == "audio_encoder" else "dot"
