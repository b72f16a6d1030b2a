"""zsa-eval's models inside mteb: `ZsaEvalModel` wraps any zsa-eval family (built-in or a plugin, by its model config
or as a loaded family) as an mteb audio model, so that `mteb.evaluate(ZsaEvalModel.from_config("tiny_random"),
tasks=...)` embeds clips with zsa-eval's engine (each clip decoded, resampled and prepared alone: batch-invariant)
and its embedding cache, and texts with the family's text tower.

mteb hands a model a DataLoader over a dataset's `audio` (or `text`) column. The wrapper reads the audio as encoded
(the file's path or bytes, not mteb's decoding; arrays given as such are written as float32 WAV, losslessly) and
runs zsa-eval's engine on it, each clip's crop seed drawn from its bytes and the run `seed`: a clip's embedding does
not depend on its batch, its row or the task. The ModelMeta says what zsa-eval knows: the model's name, its weights
fingerprint as the revision, its modalities, and the similarity its scores rank by (cosine for CLIP-kind families and
audio encoders, dot for other embedding families)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import soundfile as sf
import xxhash

from zsa_eval.api import composed, model_overrides
from zsa_eval.audio import AudioSource
from zsa_eval.config import checked
from zsa_eval.engine import caption_embeddings, embed_clips
from zsa_eval.errors import UserError
from zsa_eval.families import AudioEncoderFamily, ModelFamily
from zsa_eval.families.mteb_model import mteb_similarity
from zsa_eval.integrations import import_mteb
from zsa_eval.long_audio import LongAudio, long_audio_policy
from zsa_eval.models import LoadedModel, resolve_device
from zsa_eval.run import audio_cache, load_scorer, resolve_num_workers

FEATURE = "zsa_eval.integrations.mteb"
mteb = import_mteb(FEATURE)
from mteb.models import ModelMeta  # noqa: E402  (mteb imported through import_mteb first)
from mteb.models.abs_encoder import AbsEncoder  # noqa: E402
CHUNK = 256  # rows read from mteb's dataset (and their encoded audio held) at a time

__all__ = ["ZsaEvalModel", "model_meta"]


def model_meta(loaded: LoadedModel):
    """An mteb ModelMeta of what zsa-eval knows of the model; the rest (license, languages, ...) left unknown."""
    family = loaded.family
    name = loaded.name if "/" in loaded.name else f"zsa-eval/{loaded.name}"
    parameters = sum(tensor.numel() for tensor in family.model.parameters()) if family.model is not None else None
    return ModelMeta(
        loader=None, name=name, revision=family.weight_fingerprint, release_date=None, languages=None,
        n_parameters=parameters, memory_usage_mb=None, max_tokens=None, embed_dim=family.embedding_dim,
        license=None, open_weights=None, public_training_code=None, public_training_data=None,
        framework=["PyTorch"], reference=None, similarity_fn_name=mteb_similarity(family), use_instructions=False,
        training_datasets=None, modalities=["audio"] if family.kind == "audio_encoder" else ["audio", "text"],
        adapted_from=loaded.name_or_path)


def clip_id(source: AudioSource) -> str:
    """A clip's id for its crop seed: its bytes' hash (a path: the path), whatever row mteb gives it."""
    return xxhash.xxh3_64_hexdigest(source) if isinstance(source, bytes) else str(source)


def audio_source(audio: dict) -> AudioSource:
    """One row of an `audio` column as zsa-eval reads it: the encoded bytes or file (datasets' Audio, undecoded),
    or an array with its rate written as a float32 WAV (lossless)."""
    if audio.get("bytes"):
        return audio["bytes"]
    if audio.get("path"):
        return audio["path"]
    if audio.get("array") is None:
        raise UserError(f"{FEATURE}: an audio row has neither bytes, a path nor an array")
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio["array"], dtype=np.float32).T, int(audio["sampling_rate"]), format="WAV",
             subtype="FLOAT")
    return buffer.getvalue()


def undecoded_audio(dataset) -> Any:
    """mteb's dataset with its audio column as stored (datasets' Audio not decoded)."""
    from datasets import Audio

    feature = dataset.features["audio"]
    return dataset.cast_column("audio", Audio(decode=False)) if isinstance(feature, Audio) else dataset


class ZsaEvalModel(AbsEncoder):
    """A zsa-eval model as an mteb encoder: `encode` gives zsa-eval's audio embeddings of an audio column (one per
    clip, as its probes use them) and the family's text embeddings of a text column."""

    def __init__(self, loaded: LoadedModel, long_audio: LongAudio, cache=None, batch_size: int = 16,
                 num_workers: int = 0, seed: int = 0):
        self.loaded, self.long_audio, self.cache = loaded, long_audio, cache
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.model = loaded.model
        self.mteb_model_meta = model_meta(loaded)

    @classmethod
    def from_config(cls, model: str | ModelFamily, overrides: Sequence[str] = ()) -> ZsaEvalModel:
        """The model `python -m zsa_eval model=MODEL OVERRIDES...` would load (or a loaded family), with that
        config's device, precision, batch_size, num_workers, seed, long_audio and embedding cache."""
        cfg = checked(composed([*model_overrides(model), *overrides]))
        family = model if isinstance(model, ModelFamily) else None
        loaded = load_scorer(cfg, family.device if family else resolve_device(cfg.device), family)
        if not isinstance(loaded.family, AudioEncoderFamily):
            raise UserError(f"{FEATURE}: model {loaded.name} is an audio language model ({loaded.family.name}), "
                            "which gives no embeddings: mteb evaluates embedding models")
        long_audio = long_audio_policy(cfg.long_audio, loaded.family.window_seconds, loaded.sampling_rate,
                                       loaded.name, loaded.family.frame_seconds)
        return cls(loaded, long_audio, audio_cache(cfg, loaded, long_audio), cfg.batch_size,
                   resolve_num_workers(cfg.num_workers, loaded.device), cfg.seed)

    def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type=None,
               **kwargs: Any) -> np.ndarray:
        """(rows, dim) float32 embeddings of the DataLoader's dataset: of its audio column, or of its text column."""
        columns = set(inputs.dataset.column_names)
        if "audio" in columns and "text" in columns:
            raise UserError(f"{FEATURE}: {task_metadata.name} gives audio and text together in one row; zsa-eval "
                            "models embed one or the other")
        if "audio" in columns:
            return self.audio_embeddings(undecoded_audio(inputs.dataset))
        if "text" in columns:
            return self.text_embeddings(list(inputs.dataset["text"]))
        raise UserError(f"{FEATURE}: {task_metadata.name} gives {', '.join(sorted(columns))}, neither audio nor text")

    def audio_embeddings(self, dataset) -> np.ndarray:
        """One clip embedding per row, CHUNK rows at a time through zsa-eval's engine and cache."""
        rows = []
        for start in range(0, len(dataset), CHUNK):
            rows += self.embedded([audio_source(audio) for audio in dataset[start:start + CHUNK]["audio"]])
        return np.stack(rows)

    def embedded(self, sources: list[AudioSource]) -> list[np.ndarray]:
        """zsa-eval's embeddings of encoded clips, in their order; a clip zsa-eval cannot read is one line."""
        family = self.loaded.family
        embeddings: list[np.ndarray | None] = [None] * len(sources)
        for batch in embed_clips(self.loaded, sources, [clip_id(source) for source in sources], self.batch_size,
                                 self.num_workers, self.seed, progress=False, cache=self.cache,
                                 long_audio=self.long_audio):
            if batch.skipped:
                index, reason, detail = batch.skipped[0]
                shown = sources[index] if isinstance(sources[index], str) else "a clip given as bytes"
                raise UserError(f"{FEATURE}: {shown}: {reason} ({detail}); mteb needs an embedding of every clip")
            for index, embedding in zip(batch.indices, batch.audio):
                embeddings[index] = family.clip_embedding(embedding).float().cpu().numpy()
        return embeddings

    def text_embeddings(self, texts: list[str]) -> np.ndarray:
        """The family's text embeddings (texts as written, no template), batch_size at a time."""
        if self.loaded.family.kind == "audio_encoder":
            raise UserError(f"{FEATURE}: model {self.loaded.name} is an audio encoder ({self.loaded.family.name}) "
                            "with no text tower: choose mteb tasks without text (classification, clustering, ...)")
        return caption_embeddings(self.loaded, texts, self.batch_size).float().cpu().numpy()
