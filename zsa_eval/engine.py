"""Scoring: text embeddings once per class, audio streamed through a DataLoader, probabilities per clip.

Two engines give the same scores: `embed` (batched audio encoder, text computed once, audio embeddings
cached) and `pipeline` (transformers' zero-shot-audio-classification pipeline, one clip at a time, the
reference).

Batch invariance, made explicit: every clip is featurized alone, exactly as the pipeline does.
`ClapFeatureExtractor` called on a batch of short clips marks one random clip `is_longer=True` (which
switches the fused model's fusion path for it), while a clip featurized alone is always marked; and the
fusion crops of long clips are random. Featurizing each clip alone with a seed derived from (seed, item id)
makes its features, and so its scores, independent of batch size, order and of which clips share its batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zsa_eval.audio import AudioSource, load_clip, read_encoded
from zsa_eval.cache import EmbeddingCache, clip_key
from zsa_eval.errors import BadAudio, UserError
from zsa_eval.featurize import ClapFeaturizer
from zsa_eval.models import LoadedModel


@dataclass
class BatchScores:
    """Class probabilities for the clips of one batch (positions in the dataset), and the clips skipped
    as (position, reason, detail). The embed engine also gives the logits (scaled cosine similarities), the
    normalized audio embeddings and which rows' embeddings came from the cache."""

    indices: list[int]
    probabilities: np.ndarray
    skipped: list[tuple[int, str, str]]
    logits: np.ndarray | None = None
    audio_embeddings: np.ndarray | None = None
    cached_rows: list[int] = field(default_factory=list)


def clip_seed(seed: int, item_id: str) -> int:
    """A seed for one clip's random crops that depends only on the run seed and the item's id."""
    digest = hashlib.blake2b(f"{seed}\0{item_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


class ClipDataset(Dataset):
    """Prepares one item in a worker: a cached embedding, or features when given a CPU `featurizer`, or else
    the waveform (featurized later on the device, or by the pipeline). Items that cannot be read or decoded
    come back as skip records."""

    def __init__(self, clips: Sequence[AudioSource], item_ids: Sequence[str], sampling_rate: int, seed: int,
                 featurizer: ClapFeaturizer | None = None, cache: EmbeddingCache | None = None):
        self.clips = clips
        self.seeds = [clip_seed(seed, item_id) for item_id in item_ids]
        self.sampling_rate = sampling_rate
        self.featurizer = featurizer
        self.cache = cache

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        seed = self.seeds[index]
        try:
            encoded = read_encoded(self.clips[index])
            key = clip_key(encoded, seed) if self.cache else None
            embedding = self.cache.load(key) if self.cache else None
            if embedding is not None:
                return {"index": index, "embedding": embedding}
            waveform = load_clip(encoded, self.sampling_rate)
        except BadAudio as error:
            return {"index": index, "error": (error.reason, error.detail)}
        if self.featurizer is None:
            return {"index": index, "waveform": waveform, "seed": seed, "cache_key": key}
        features, is_longer = self.featurizer(waveform, seed)
        return {"index": index, "input_features": features.numpy(), "is_longer": is_longer, "cache_key": key}


def collate_clips(samples: list[dict]) -> dict:
    """Group a batch's samples by what they carry; bad ones are kept apart as (index, reason, detail)."""
    good = [sample for sample in samples if "error" not in sample]
    to_encode = [sample for sample in good if "embedding" not in sample]
    batch = {
        "indices": [sample["index"] for sample in good],
        "skipped": [(sample["index"], *sample["error"]) for sample in samples if "error" in sample],
        "cached": {row: sample["embedding"] for row, sample in enumerate(good) if "embedding" in sample},
        "encode_rows": [row for row, sample in enumerate(good) if "embedding" not in sample],
        "cache_keys": [sample["cache_key"] for sample in to_encode],
        "waveforms": [sample["waveform"] for sample in to_encode if "waveform" in sample],
        "seeds": [sample["seed"] for sample in to_encode if "waveform" in sample],
    }
    if to_encode and "input_features" in to_encode[0]:
        batch["input_features"] = torch.from_numpy(np.stack([sample["input_features"] for sample in to_encode]))
        batch["is_longer"] = torch.tensor([[sample["is_longer"]] for sample in to_encode])
    return batch


def clip_loader(dataset: ClipDataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate_clips)


def pooled(output) -> torch.Tensor:
    """The embedding from get_*_features, whether it returns a tensor (transformers 4) or an output (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@torch.inference_mode()
def text_embeddings(loaded: LoadedModel, candidate_labels: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
    """One normalized embedding per class: prompt embeddings normalized, averaged across prompts, renormalized."""
    per_prompt = []
    for prompt in prompts:
        texts = [prompt.format(label) for label in candidate_labels]
        tokens = loaded.tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(loaded.device)
        embeddings = pooled(loaded.model.get_text_features(**tokens)).float()
        per_prompt.append(torch.nn.functional.normalize(embeddings, dim=-1))
    return torch.nn.functional.normalize(torch.stack(per_prompt).mean(dim=0), dim=-1)


@torch.inference_mode()
def audio_embeddings(loaded: LoadedModel, input_features: torch.Tensor, is_longer: torch.Tensor) -> torch.Tensor:
    """Normalized float32 audio embeddings of a featurized batch."""
    audio = pooled(loaded.model.get_audio_features(
        input_features=input_features.to(loaded.device, loaded.dtype), is_longer=is_longer.to(loaded.device)
    ))
    return torch.nn.functional.normalize(audio.float(), dim=-1)


def featurize_on_device(featurizer: ClapFeaturizer, waveforms: list[np.ndarray], seeds: list[int]):
    """Stacked features and is_longer flags of a batch, each clip featurized alone, on the model's device."""
    featurized = [featurizer(waveform, seed) for waveform, seed in zip(waveforms, seeds)]
    return torch.stack([features for features, _ in featurized]), torch.tensor([[longer] for _, longer in featurized])


@torch.inference_mode()
def embed_batches(
    loaded: LoadedModel,
    loader: DataLoader,
    classifier: torch.Tensor,
    cache: EmbeddingCache | None,
    device_featurizer: ClapFeaturizer | None,
) -> Iterator[BatchScores]:
    """Audio embeddings (from the cache or the encoder); probabilities = softmax(cosine x audio logit scale)."""
    logit_scale = loaded.model.logit_scale_a.exp().float()
    for batch in loader:
        audio = torch.empty((len(batch["indices"]), classifier.shape[1]), device=loaded.device)
        if batch["encode_rows"]:
            if device_featurizer is not None:
                features, is_longer = featurize_on_device(device_featurizer, batch["waveforms"], batch["seeds"])
            else:
                features, is_longer = batch["input_features"], batch["is_longer"]
            encoded = audio_embeddings(loaded, features, is_longer)
            audio[batch["encode_rows"]] = encoded
            if cache:
                for key, embedding in zip(batch["cache_keys"], encoded.cpu().numpy()):
                    cache.store(key, embedding)
        for row, embedding in batch["cached"].items():
            audio[row] = torch.from_numpy(embedding).to(loaded.device)
        logits = audio @ classifier.T * logit_scale
        yield BatchScores(batch["indices"], logits.softmax(dim=-1).cpu().numpy(), batch["skipped"],
                          logits.cpu().numpy(), audio.cpu().numpy(), list(batch["cached"]))


def pipeline_batches(
    loaded: LoadedModel, loader: DataLoader, candidate_labels: Sequence[str], prompt: str
) -> Iterator[BatchScores]:
    """The reference: transformers' zero-shot-audio-classification pipeline, called once per clip."""
    from transformers import pipeline

    classifier = pipeline("zero-shot-audio-classification", model=loaded.model, tokenizer=loaded.tokenizer,
                          feature_extractor=loaded.feature_extractor, device=loaded.device)
    position = {label: column for column, label in enumerate(candidate_labels)}
    token_ids = loaded.tokenizer([prompt.format(label) for label in candidate_labels])["input_ids"]
    limit = loaded.tokenizer.model_max_length
    too_long = [label for label, ids in zip(candidate_labels, token_ids) if len(ids) > limit]
    if too_long:
        raise UserError(f"engine=pipeline cannot score the prompt for label {too_long[0][:60]!r}: it is longer than "
                        f"the text model's {limit} tokens; use engine=embed (which "
                        "truncates)")
    for batch in loader:
        probabilities = np.zeros((len(batch["indices"]), len(candidate_labels)), dtype=np.float32)
        for row, (waveform, seed) in enumerate(zip(batch["waveforms"], batch["seeds"])):
            np.random.seed(seed)  # the same crops ClapFeaturizer takes for this clip
            for result in classifier(waveform, candidate_labels=list(candidate_labels), hypothesis_template=prompt):
                probabilities[row, position[result["label"]]] = result["score"]
        yield BatchScores(batch["indices"], probabilities, batch["skipped"])


def check_engine_settings(engine: str, prompts: Sequence[str]) -> None:
    """The engine's own limits (the schema, zsa_eval/config.py, checks the values of engine and featurizer)."""
    if engine == "pipeline" and len(prompts) != 1:
        raise UserError("engine=pipeline takes a single prompt: use engine=embed for template=ensemble")


def score_clips(
    loaded: LoadedModel,
    clips: Sequence[AudioSource],
    item_ids: Sequence[str],
    candidate_labels: Sequence[str],
    prompts: Sequence[str],
    engine: str,
    batch_size: int,
    num_workers: int,
    seed: int,
    progress: bool = True,
    cache: EmbeddingCache | None = None,
    featurizer: str = "auto",
) -> Iterator[BatchScores]:
    """Stream every clip through the chosen engine, batch by batch, with a progress bar.

    `featurizer`: `workers` featurizes on CPU in the DataLoader workers, `device` on the model's device in
    the main process (best on GPU, where CPU featurization would be the bottleneck); `auto` picks `device`
    on CUDA and `workers` otherwise."""
    check_engine_settings(engine, prompts)
    if engine == "embed":
        on_device = featurizer == "device" or (featurizer == "auto" and loaded.device.type == "cuda")
        device_featurizer = ClapFeaturizer(loaded.feature_extractor, loaded.device) if on_device else None
        worker_featurizer = None if on_device else ClapFeaturizer(loaded.feature_extractor, torch.device("cpu"))
        dataset = ClipDataset(clips, item_ids, loaded.sampling_rate, seed, worker_featurizer, cache)
        batches = embed_batches(loaded, clip_loader(dataset, batch_size, num_workers),
                                text_embeddings(loaded, candidate_labels, prompts), cache, device_featurizer)
    else:
        dataset = ClipDataset(clips, item_ids, loaded.sampling_rate, seed)
        batches = pipeline_batches(loaded, clip_loader(dataset, batch_size, num_workers), candidate_labels,
                                   prompts[0])
    with tqdm(total=len(clips), desc=f"{engine} {loaded.name}", unit="clip", disable=not progress) as bar:
        for batch in batches:
            bar.update(len(batch.indices) + len(batch.skipped))
            yield batch
