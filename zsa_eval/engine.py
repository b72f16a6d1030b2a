"""Scoring: text embeddings once per class, audio streamed through a DataLoader, scores per clip.

The engine knows no model family, only its kind: an embedding family (zsa_eval/families/) prepares each clip, embeds
audio and text, and turns embeddings into logits and scores (softmax for CLAP, sigmoid for PE-Audio); a scoring
family (audio language models) scores each clip's candidate answers itself (`scoring_batches`). Two engines: `embed`
(zsa-eval's own: batched audio encoder, text computed once, audio embeddings cached; the only one for scoring
families) and `pipeline` (transformers' zero-shot-audio-classification pipeline, one clip at a time, the reference
for the families it can run: CLAP).

Batch invariance, made explicit: every clip is prepared alone (for CLAP, featurized exactly as the pipeline does,
its random crops seeded from (seed, item id)), so its inputs, and so its scores, do not depend on batch size, order
or on which clips share its batch; each family keeps its encoder batch-invariant too (see its module).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from zsa_eval.answers import filled_instruction, match_answer
from zsa_eval.audio import AudioSource, load_clip, read_encoded
from zsa_eval.cache import EmbeddingCache, clip_key
from zsa_eval.errors import BadAudio, UserError
from zsa_eval.families import Family, Inputs, ModelFamily, ScoringFamily
from zsa_eval.interrupts import stop_if_interrupted
from zsa_eval.models import LoadedModel


@dataclass
class BatchScores:
    """Scores for the clips of one batch (positions in the dataset; `probabilities` holds the family's score kind:
    softmax probabilities, sigmoid scores, or 1 for the class an answer matched), and the clips skipped as (position,
    reason, detail). The embed engine also gives the logits, one audio embedding per clip and which rows'
    embeddings came from the cache; a scoring family in generate mode gives each clip's answer and how it matched."""

    indices: list[int]
    probabilities: np.ndarray
    skipped: list[tuple[int, str, str]]
    logits: np.ndarray | None = None
    audio_embeddings: np.ndarray | None = None
    cached_rows: list[int] = field(default_factory=list)
    answers: list[str] | None = None
    matches: list[str] | None = None


def clip_seed(seed: int, item_id: str) -> int:
    """A seed for one clip's random crops that depends only on the run seed and the item's id."""
    digest = hashlib.blake2b(f"{seed}\0{item_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


class ClipDataset(Dataset):
    """Prepares one item in a worker: a cached embedding, or model inputs when given a CPU `prepare` (a family's
    preparer), or else the waveform (prepared later on the device, or by the pipeline). Items that cannot be read
    or decoded come back as skip records."""

    def __init__(self, clips: Sequence[AudioSource], item_ids: Sequence[str], sampling_rate: int, seed: int,
                 prepare: Callable[[np.ndarray, int], Inputs] | None = None, cache: EmbeddingCache | None = None):
        self.clips = clips
        self.seeds = [clip_seed(seed, item_id) for item_id in item_ids]
        self.sampling_rate = sampling_rate
        self.prepare = prepare
        self.cache = cache

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        sample = self.sample(index)
        stop_if_interrupted()  # a Ctrl-C recorded while this clip was decoded stops the run here
        return sample

    def sample(self, index: int) -> dict:
        """Item `index` as a cached embedding, model inputs, a waveform or a skip record."""
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
        if self.prepare is None:
            return {"index": index, "waveform": waveform, "seed": seed, "cache_key": key}
        return {"index": index, "inputs": self.prepare(waveform, seed), "cache_key": key}


def collate_clips(samples: list[dict]) -> dict:
    """Group a batch's samples by what they carry; bad ones are kept apart as (index, reason, detail)."""
    good = [sample for sample in samples if "error" not in sample]
    to_encode = [sample for sample in good if "embedding" not in sample]
    return {
        "indices": [sample["index"] for sample in good],
        "skipped": [(sample["index"], *sample["error"]) for sample in samples if "error" in sample],
        "cached": {row: sample["embedding"] for row, sample in enumerate(good) if "embedding" in sample},
        "encode_rows": [row for row, sample in enumerate(good) if "embedding" not in sample],
        "cache_keys": [sample["cache_key"] for sample in to_encode],
        "waveforms": [sample["waveform"] for sample in to_encode if "waveform" in sample],
        "seeds": [sample["seed"] for sample in to_encode if "waveform" in sample],
        "prepared": [sample["inputs"] for sample in to_encode if "inputs" in sample],
    }


def clip_loader(dataset: ClipDataset, batch_size: int, num_workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate_clips)


def text_embeddings(loaded: LoadedModel, candidate_labels: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
    """One text embedding per class (the family's classifier: prompts filled with each label, combined)."""
    return loaded.family.classifier(candidate_labels, prompts)


def audio_embeddings(loaded: LoadedModel, inputs: Inputs) -> list[torch.Tensor]:
    """The audio embeddings of a batch of collated model inputs, one per clip."""
    return loaded.family.embed_audio(inputs)


@dataclass
class AudioBatch:
    """The audio embeddings of one batch's clips (positions in `indices`, as the family embeds them: what the
    cache stores), the clips skipped as (position, reason, detail) and which rows came from the cache."""

    indices: list[int]
    skipped: list[tuple[int, str, str]]
    audio: list[torch.Tensor]
    cached_rows: list[int]


@torch.inference_mode()
def audio_batches(
    family: Family,
    loader: DataLoader,
    cache: EmbeddingCache | None,
    device_prepare: Callable[[np.ndarray, int], Inputs] | None,
) -> Iterator[AudioBatch]:
    """Audio embeddings, from the cache or the encoder (new ones are stored in the cache)."""
    for batch in loader:
        audio: list[torch.Tensor | None] = [None] * len(batch["indices"])
        if batch["encode_rows"]:
            prepared = batch["prepared"] or [device_prepare(waveform, seed)
                                             for waveform, seed in zip(batch["waveforms"], batch["seeds"])]
            encoded = family.embed_audio(family.collate(prepared))
            for row, embedding in zip(batch["encode_rows"], encoded):
                audio[row] = embedding
            if cache:
                for key, embedding in zip(batch["cache_keys"], encoded):
                    cache.store(key, embedding.cpu().numpy())
        for row, embedding in batch["cached"].items():
            audio[row] = torch.from_numpy(embedding).to(family.device)
        yield AudioBatch(batch["indices"], batch["skipped"], audio, list(batch["cached"]))


def embed_batches(
    family: Family,
    loader: DataLoader,
    classifier: torch.Tensor,
    cache: EmbeddingCache | None,
    device_prepare: Callable[[np.ndarray, int], Inputs] | None,
) -> Iterator[BatchScores]:
    """Audio embeddings (from the cache or the encoder), then the family's logits and scores."""
    for batch in audio_batches(family, loader, cache, device_prepare):
        if not batch.audio:
            yield BatchScores(batch.indices, np.zeros((0, classifier.shape[0]), np.float32), batch.skipped)
            continue
        with torch.inference_mode():
            logits = family.logits(batch.audio, classifier)
            clip_embeddings = torch.stack([family.clip_embedding(embedding) for embedding in batch.audio])
        yield BatchScores(batch.indices, family.scores(logits).cpu().numpy(), batch.skipped,
                          logits.cpu().numpy(), clip_embeddings.cpu().numpy(), batch.cached_rows)


def embed_loader(loaded: LoadedModel, clips: Sequence[AudioSource], item_ids: Sequence[str], batch_size: int,
                 num_workers: int, seed: int, cache: EmbeddingCache | None, featurizer: str,
                 ) -> tuple[DataLoader, Callable[[np.ndarray, int], Inputs] | None]:
    """The embed engine's DataLoader and, when clips are prepared on the model's device, its preparer.

    `featurizer`: `workers` prepares clips (the family's featurization) on CPU in the DataLoader workers, `device`
    on the model's device in the main process (best on GPU, where CPU featurization would be the bottleneck);
    `auto` picks `device` on CUDA and `workers` otherwise."""
    family = loaded.family
    on_device = featurizer == "device" or (featurizer == "auto" and loaded.device.type == "cuda")
    device_prepare = family.preparer(loaded.device) if on_device else None
    worker_prepare = None if on_device else family.preparer(torch.device("cpu"))
    dataset = ClipDataset(clips, item_ids, loaded.sampling_rate, seed, worker_prepare, cache)
    return clip_loader(dataset, batch_size, num_workers), device_prepare


def embed_clips(loaded: LoadedModel, clips: Sequence[AudioSource], item_ids: Sequence[str], batch_size: int,
                num_workers: int, seed: int, progress: bool = True, cache: EmbeddingCache | None = None,
                featurizer: str = "auto") -> Iterator[AudioBatch]:
    """Stream every clip through the audio encoder (or the cache), batch by batch: the embeddings, no scores
    (retrieval compares them with caption embeddings once every clip is done)."""
    loader, device_prepare = embed_loader(loaded, clips, item_ids, batch_size, num_workers, seed, cache, featurizer)
    yield from with_progress(audio_batches(loaded.family, loader, cache, device_prepare), len(clips),
                             f"embed {loaded.name}", progress)


@torch.inference_mode()
def caption_embeddings(loaded: LoadedModel, captions: Sequence[str], batch_size: int) -> torch.Tensor:
    """One text embedding per caption, as written (no template), `batch_size` captions at a time."""
    return torch.cat([loaded.family.embed_texts(captions[start:start + batch_size])
                      for start in range(0, len(captions), batch_size)])


def with_progress(batches: Iterator, total: int, description: str, progress: bool) -> Iterator:
    """Pass the batches through, counting their clips (scored or skipped) on a progress bar."""
    with tqdm(total=total, desc=description, unit="clip", disable=not progress) as bar:
        for batch in batches:
            bar.update(len(batch.indices) + len(batch.skipped))
            yield batch


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


def check_engine_family(engine: str, family: ModelFamily, name_or_path: str) -> None:
    """engine=pipeline only for the families transformers' pipeline can run."""
    if engine == "pipeline" and not family.pipeline_supported:
        reason = ("an audio language model is scored by zsa-eval's own engine" if family.kind == "scoring"
                  else "it needs logits_per_audio")
        raise UserError(f"engine=pipeline cannot run {name_or_path!r}: transformers' zero-shot-audio-classification "
                        f"pipeline does not support {family.name} models ({reason}); use engine=embed")


def check_engine_settings(engine: str, prompts: Sequence[str]) -> None:
    """The engine's own limits (the schema, zsa_eval/config.py, checks the values of engine and featurizer)."""
    if engine == "pipeline" and len(prompts) != 1:
        raise UserError("engine=pipeline takes a single prompt: use engine=embed for template=ensemble")


def answer_logits(family: ScoringFamily, inputs: Inputs, answers: Sequence[Sequence[int]],
                  n_prompts: int) -> np.ndarray:
    """One clip's logit per class: the mean over the prompts of its answers' log-likelihoods (answers ordered prompt by
    prompt, each prompt filled with every label)."""
    return family.answer_log_likelihoods(inputs, answers).reshape(n_prompts, -1).mean(dim=0).cpu().numpy()


def scoring_batches(family: ScoringFamily, loader: DataLoader, candidate_labels: Sequence[str],
                    prompts: Sequence[str]) -> Iterator[BatchScores]:
    """A scoring family on each clip of each batch, one clip at a time. Likelihood: the softmax over the classes
    of their answers' log-likelihoods (the answers tokenized once). Generate: the model's answer, matched to a class
    (zsa_eval.answers): 1 for that class, a row of 0 when it names none."""
    n_classes = len(candidate_labels)
    if family.scoring == "likelihood":
        answers = family.answer_tokens([prompt.format(label) for prompt in prompts for label in candidate_labels])
    for batch in loader:
        if family.scoring == "likelihood":
            logits = np.asarray([answer_logits(family, inputs, answers, len(prompts))
                                 for inputs in batch["prepared"]], dtype=np.float32).reshape(-1, n_classes)
            probabilities = torch.from_numpy(logits).softmax(dim=-1).numpy()
            yield BatchScores(batch["indices"], probabilities, batch["skipped"], logits)
            continue
        said = [family.generate_answer(inputs) for inputs in batch["prepared"]]
        matches = [match_answer(answer, candidate_labels) for answer in said]
        probabilities = np.zeros((len(said), n_classes), dtype=np.float32)
        for row, match in enumerate(matches):
            if match.index is not None:
                probabilities[row, match.index] = 1.0
        yield BatchScores(batch["indices"], probabilities, batch["skipped"], answers=said,
                          matches=[match.kind for match in matches])


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
    instruction: str | None = None,
) -> Iterator[BatchScores]:
    """Stream every clip through the chosen engine, batch by batch, with a progress bar (`featurizer`: see
    embed_loader). A scoring family asks each clip `instruction` (its {labels} filled); its clips are prepared in
    the DataLoader (on CPU, whatever `featurizer` says) and nothing is cached."""
    check_engine_settings(engine, prompts)
    check_engine_family(engine, loaded.family, loaded.name_or_path)
    if loaded.family.kind == "scoring":
        prepare = loaded.family.preparer(filled_instruction(instruction, candidate_labels))
        dataset = ClipDataset(clips, item_ids, loaded.sampling_rate, seed, prepare)
        batches = scoring_batches(loaded.family, clip_loader(dataset, batch_size, num_workers), candidate_labels,
                                  prompts)
    elif engine == "embed":
        loader, device_prepare = embed_loader(loaded, clips, item_ids, batch_size, num_workers, seed, cache,
                                              featurizer)
        batches = embed_batches(loaded.family, loader, text_embeddings(loaded, candidate_labels, prompts), cache,
                                device_prepare)
    else:
        dataset = ClipDataset(clips, item_ids, loaded.sampling_rate, seed)
        batches = pipeline_batches(loaded, clip_loader(dataset, batch_size, num_workers), candidate_labels,
                                   prompts[0])
    stage = "score" if loaded.family.kind == "scoring" else engine
    yield from with_progress(batches, len(clips), f"{stage} {loaded.name}", progress)
