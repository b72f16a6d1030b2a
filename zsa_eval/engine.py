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

Long clips (zsa_eval/long_audio.py): the embed engine splits each decoded clip into the spans its `long_audio`
policy takes (under `native`, the whole clip) and prepares each span alone, as a clip; the encoder takes
`batch_size` windows at a time, however many clips they come from, and a clip's windows are pooled into its one
embedding by the family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from zsa_eval.answers import ANSWER_MATCHING, filled_instruction
from zsa_eval.audio import AudioSource
from zsa_eval.cache import EmbeddingCache
from zsa_eval.clips import ClipDataset, clip_loader
from zsa_eval.errors import BadAudio, UserError
from zsa_eval.families import Family, Inputs, ModelFamily, ScoringFamily
from zsa_eval.families.contract import (calling, checked_answer, checked_audio, checked_likelihoods, checked_logits,
                                        checked_pooled, checked_texts, guarded_preparer)
from zsa_eval.long_audio import LongAudio, check_engine_policy, check_family_policy, long_audio_policy
from zsa_eval.models import LoadedModel


@dataclass
class BatchScores:
    """Scores for the clips of one batch (positions in the dataset; `probabilities` holds the family's score kind:
    softmax probabilities, sigmoid scores, or 1 for the class an answer matched), and the clips skipped as (position,
    reason, detail), with each scored clip's windows (Windowing.record: for its progress-log record). The embed
    engine also gives the logits, one audio embedding per clip and which rows' embeddings came from the cache; a
    scoring family in generate mode gives each clip's answer and how it matched."""

    indices: list[int]
    probabilities: np.ndarray
    skipped: list[tuple[int, str, str]]
    logits: np.ndarray | None = None
    audio_embeddings: np.ndarray | None = None
    cached_rows: list[int] = field(default_factory=list)
    clip_windows: list[dict] = field(default_factory=list)
    answers: list[str] | None = None
    matches: list[str] | None = None


def text_embeddings(loaded: LoadedModel, candidate_labels: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
    """One text embedding per class (the family's classifier: prompts filled with each label, combined)."""
    with calling(loaded.family, "classifier"):
        return loaded.family.classifier(candidate_labels, prompts)


def audio_embeddings(family: Family, prepared: Sequence[Inputs]) -> list[torch.Tensor]:
    """The audio embeddings of a batch of clips' (or windows') model inputs, one per clip, as the contract wants."""
    with calling(family, "collate"):
        inputs = family.collate(prepared)
    with calling(family, "embed_audio"):
        embeddings = family.embed_audio(inputs)
    return checked_audio(family, embeddings, len(prepared))


@dataclass
class AudioBatch:
    """The audio embeddings of one batch's clips (positions in `indices`, as the family embeds them, a long clip's
    windows pooled: what the cache stores), the clips skipped as (position, reason, detail), which rows came from
    the cache and each clip's windows (Windowing.record)."""

    indices: list[int]
    skipped: list[tuple[int, str, str]]
    audio: list[torch.Tensor]
    cached_rows: list[int]
    clip_windows: list[dict]


def window_inputs(clip: dict, number: int, prepare: Callable[[np.ndarray, int], Inputs]) -> Inputs:
    """The model inputs of window `number` of a clip sample: prepared in the worker, or now by `prepare`."""
    if "inputs" in clip:
        return clip["inputs"][number]
    start, stop = clip["windowing"].spans[number]
    return prepare(clip["waveform"][start:stop], clip["seed"])


def pooled(family: Family, embeddings: list[torch.Tensor], weights: Sequence[int]) -> torch.Tensor:
    """A clip's embedding: its one window's, or its windows' pooled by the family."""
    if len(embeddings) == 1:
        return embeddings[0]
    with calling(family, "pool_windows"):
        return checked_pooled(family, family.pool_windows(embeddings, weights))


def encode_windows(family: Family, clips: Sequence[dict], batch_size: int,
                   prepare: Callable[[np.ndarray, int], Inputs]) -> list[torch.Tensor | BadAudio]:
    """One embedding per clip sample: its windows prepared (those not prepared in a worker, by `prepare`) and
    encoded `batch_size` windows at a time (across clips), then pooled by the family (a clip of one window is that
    window's embedding); or, for a clip whose window `prepare` refused, why (the clip is skipped)."""
    slots = [(row, number) for row, clip in enumerate(clips) for number in range(len(clip["windowing"].spans))]
    windows: list[list[torch.Tensor]] = [[] for _ in clips]
    refused: dict[int, BadAudio] = {}
    for first in range(0, len(slots), batch_size):
        prepared: dict[tuple[int, int], Inputs] = {}
        for row, number in slots[first:first + batch_size]:
            try:
                if row not in refused:
                    prepared[row, number] = window_inputs(clips[row], number, prepare)
            except BadAudio as error:
                refused[row] = error
        chunk = [slot for slot in prepared if slot[0] not in refused]
        if chunk:
            for (row, _), embedding in zip(chunk, audio_embeddings(family, [prepared[slot] for slot in chunk])):
                windows[row].append(embedding)
    return [refused[row] if row in refused else pooled(family, windows[row], clip["windowing"].weights)
            for row, clip in enumerate(clips)]


@torch.inference_mode()
def audio_batches(
    family: Family,
    loader: DataLoader,
    cache: EmbeddingCache | None,
    prepare: Callable[[np.ndarray, int], Inputs],
    batch_size: int,
) -> Iterator[AudioBatch]:
    """Audio embeddings of each loader batch's clips, from the cache or the encoder (`batch_size` windows at a time,
    those the workers did not prepare prepared by `prepare`; new ones are stored in the cache)."""
    for batch in loader:
        clips: list[dict] = batch["clips"]
        encoded = iter(encode_windows(family, [clip for clip in clips if "embedding" not in clip], batch_size,
                                      prepare))
        kept = AudioBatch([], list(batch["skipped"]), [], [], [])
        for clip in clips:
            if "embedding" in clip:
                kept.cached_rows.append(len(kept.audio))
                embedding = torch.from_numpy(clip["embedding"]).to(family.device)
            else:
                embedding = next(encoded)
                if isinstance(embedding, BadAudio):
                    kept.skipped.append((clip["index"], embedding.reason, embedding.detail))
                    continue
                if cache:
                    cache.store(clip["cache_key"], embedding.cpu().numpy(), clip["windowing"].samples)
            kept.indices.append(clip["index"])
            kept.audio.append(embedding)
            kept.clip_windows.append(clip["windowing"].record())
        yield kept


def embed_batches(
    family: Family,
    loader: DataLoader,
    classifier: torch.Tensor,
    cache: EmbeddingCache | None,
    prepare: Callable[[np.ndarray, int], Inputs],
    batch_size: int,
) -> Iterator[BatchScores]:
    """Audio embeddings (from the cache or the encoder), then the family's logits and scores."""
    for batch in audio_batches(family, loader, cache, prepare, batch_size):
        if not batch.audio:
            yield BatchScores(batch.indices, np.zeros((0, classifier.shape[0]), np.float32), batch.skipped)
            continue
        with torch.inference_mode():
            logits = family_logits(family, batch.audio, classifier)
            with calling(family, "clip_embedding"):
                clip_embeddings = torch.stack([family.clip_embedding(embedding) for embedding in batch.audio])
            with calling(family, "scores"):
                scores = checked_logits(family, family.scores(logits), *logits.shape, "scores")
        yield BatchScores(batch.indices, scores.cpu().numpy(), batch.skipped, logits.cpu().numpy(),
                          clip_embeddings.cpu().numpy(), batch.cached_rows, batch.clip_windows)


def family_logits(family: Family, audio: Sequence[torch.Tensor], classifier: torch.Tensor) -> torch.Tensor:
    """The family's (clips, classes) logits of audio embeddings against class embeddings, as the contract wants."""
    with calling(family, "logits"):
        return checked_logits(family, family.logits(audio, classifier), len(audio), classifier.shape[0])


def native_unless(long_audio: LongAudio | None, loaded: LoadedModel) -> LongAudio:
    """`long_audio`, or when None the model's own handling (long_audio=native)."""
    family = loaded.family
    return long_audio or long_audio_policy({"name": "native"}, family.window_seconds, family.sampling_rate,
                                           loaded.name)


def embed_loader(loaded: LoadedModel, clips: Sequence[AudioSource], item_ids: Sequence[str], batch_size: int,
                 num_workers: int, seed: int, cache: EmbeddingCache | None, featurizer: str, long_audio: LongAudio,
                 ) -> tuple[DataLoader, Callable[[np.ndarray, int], Inputs]]:
    """The embed engine's DataLoader (`batch_size` clips at a time, split into windows by `long_audio`) and the
    preparer of the windows the main process prepares (all of them on the device; else a clip's windows when it
    has several).

    `featurizer`: `workers` prepares clips (the family's featurization) on CPU in the DataLoader workers, `device`
    on the model's device in the main process (best on GPU, where CPU featurization would be the bottleneck);
    `auto` picks `device` on CUDA and `workers` otherwise."""
    family = loaded.family
    on_device = featurizer == "device" or (featurizer == "auto" and loaded.device.type == "cuda")
    with calling(family, "preparer"):
        prepare = guarded_preparer(family, family.preparer(loaded.device if on_device else torch.device("cpu")))
    dataset = ClipDataset(clips, item_ids, loaded.sampling_rate, seed, long_audio, None if on_device else prepare,
                          cache, family.decode_options())
    return clip_loader(dataset, batch_size, num_workers), prepare


def embed_clips(loaded: LoadedModel, clips: Sequence[AudioSource], item_ids: Sequence[str], batch_size: int,
                num_workers: int, seed: int, progress: bool = True, cache: EmbeddingCache | None = None,
                featurizer: str = "auto", long_audio: LongAudio | None = None) -> Iterator[AudioBatch]:
    """Stream every clip through the audio encoder (or the cache), batch by batch: the embeddings, no scores
    (retrieval compares them with caption embeddings once every clip is done). `long_audio`: how long clips are
    heard (None: native)."""
    loader, prepare = embed_loader(loaded, clips, item_ids, batch_size, num_workers, seed, cache, featurizer,
                                   native_unless(long_audio, loaded))
    yield from with_progress(audio_batches(loaded.family, loader, cache, prepare, batch_size), len(clips),
                             f"embed {loaded.name}", progress)


@torch.inference_mode()
def caption_embeddings(loaded: LoadedModel, captions: Sequence[str], batch_size: int) -> torch.Tensor:
    """One text embedding per caption, as written (no template), `batch_size` captions at a time."""
    family, parts = loaded.family, []
    for start in range(0, len(captions), batch_size):
        texts = captions[start:start + batch_size]
        with calling(family, "embed_texts"):
            parts.append(checked_texts(family, family.embed_texts(texts), len(texts)))
    return torch.cat(parts)


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
        for row, clip in enumerate(batch["clips"]):
            np.random.seed(clip["seed"])  # the same crops ClapFeaturizer takes for this clip
            for result in classifier(clip["waveform"], candidate_labels=list(candidate_labels),
                                     hypothesis_template=prompt):
                probabilities[row, position[result["label"]]] = result["score"]
        yield BatchScores(batch["indices"], probabilities, batch["skipped"],
                          clip_windows=[clip["windowing"].record() for clip in batch["clips"]])


def check_engine_family(engine: str, family: ModelFamily, name_or_path: str) -> None:
    """engine=pipeline only for the families transformers' pipeline can run."""
    if engine == "pipeline" and not family.pipeline_supported:
        reason = ("an audio language model is scored by zsa-eval's own engine" if family.kind == "scoring"
                  else "it needs logits_per_audio")
        raise UserError(f"engine=pipeline cannot run {name_or_path!r}: transformers' zero-shot-audio-classification "
                        f"pipeline does not support {family.name} models ({reason}); use engine=embed")


def check_engine_settings(engine: str, prompts: Sequence[str]) -> None:
    """The engine's own limits (the schema, zsa_eval/config/, checks the values of engine and featurizer)."""
    if engine == "pipeline" and len(prompts) != 1:
        raise UserError("engine=pipeline takes a single prompt: use engine=embed for template=ensemble")


def answer_logits(family: ScoringFamily, inputs: Inputs, answers: Sequence[Sequence[int]],
                  n_prompts: int) -> np.ndarray:
    """One clip's logit per class: the mean over the prompts of its answers' log-likelihoods (answers ordered prompt by
    prompt, each prompt filled with every label)."""
    with calling(family, "answer_log_likelihoods"):
        likelihoods = checked_likelihoods(family, family.answer_log_likelihoods(inputs, answers), len(answers))
    return likelihoods.float().reshape(n_prompts, -1).mean(dim=0).cpu().numpy()


def answer_of(family: ScoringFamily, inputs: Inputs) -> str:
    """The family's answer to one clip's prompt."""
    with calling(family, "generate_answer"):
        return checked_answer(family, family.generate_answer(inputs))


def scoring_batches(family: ScoringFamily, loader: DataLoader, candidate_labels: Sequence[str],
                    prompts: Sequence[str], answer_matching: str = "zsa") -> Iterator[BatchScores]:
    """A scoring family on each clip of each batch, one clip at a time. Likelihood: the softmax over the classes
    of their answers' log-likelihoods (the answers tokenized once). Generate: the model's answer, matched to a class
    by the rules `answer_matching` names (zsa_eval.answers): 1 for that class, a row of 0 when it names none."""
    n_classes = len(candidate_labels)
    if family.scoring == "likelihood":
        with calling(family, "answer_tokens"):
            answers = family.answer_tokens([prompt.format(label) for prompt in prompts for label in candidate_labels])
    for batch in loader:
        prepared = [clip["inputs"][0] for clip in batch["clips"]]  # one span each: a scoring family hears it whole
        windows = [clip["windowing"].record() for clip in batch["clips"]]
        if family.scoring == "likelihood":
            logits = np.asarray([answer_logits(family, inputs, answers, len(prompts)) for inputs in prepared],
                                dtype=np.float32).reshape(-1, n_classes)
            probabilities = torch.from_numpy(logits).softmax(dim=-1).numpy()
            yield BatchScores(batch["indices"], probabilities, batch["skipped"], logits, clip_windows=windows)
            continue
        said = [answer_of(family, inputs) for inputs in prepared]
        matches = [ANSWER_MATCHING[answer_matching](answer, candidate_labels) for answer in said]
        probabilities = np.zeros((len(said), n_classes), dtype=np.float32)
        for row, match in enumerate(matches):
            if match.index is not None:
                probabilities[row, match.index] = 1.0
        yield BatchScores(batch["indices"], probabilities, batch["skipped"], answers=said,
                          matches=[match.kind for match in matches], clip_windows=windows)


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
    long_audio: LongAudio | None = None,
    instruction: str | None = None,
    answer_matching: str = "zsa",
) -> Iterator[BatchScores]:
    """Stream every clip through the chosen engine, batch by batch, with a progress bar (`featurizer`: see
    embed_loader; `long_audio`: how long clips are heard, None: native; the pipeline and a scoring family hear only
    native). A scoring family asks each clip `instruction` (its {labels} filled), its answers matched by the rules
    `answer_matching` names; its clips are prepared in the DataLoader (on CPU, whatever `featurizer` says) and
    nothing is cached."""
    check_engine_settings(engine, prompts)
    check_engine_family(engine, loaded.family, loaded.name_or_path)
    long_audio = native_unless(long_audio, loaded)
    check_engine_policy(engine, long_audio.policy)
    check_family_policy(loaded.family, long_audio.policy)
    if loaded.family.kind == "scoring":
        with calling(loaded.family, "preparer"):
            prepare = guarded_preparer(loaded.family,
                                       loaded.family.preparer(filled_instruction(instruction, candidate_labels)))
        dataset = ClipDataset(clips, item_ids, loaded.sampling_rate, seed, long_audio, prepare,
                              decode_options=loaded.family.decode_options())
        batches = scoring_batches(loaded.family, clip_loader(dataset, batch_size, num_workers), candidate_labels,
                                  prompts, answer_matching)
    elif engine == "embed":
        loader, prepare = embed_loader(loaded, clips, item_ids, batch_size, num_workers, seed, cache, featurizer,
                                       long_audio)
        batches = embed_batches(loaded.family, loader, text_embeddings(loaded, candidate_labels, prompts), cache,
                                prepare, batch_size)
    else:
        dataset = ClipDataset(clips, item_ids, loaded.sampling_rate, seed, long_audio,
                              decode_options=loaded.family.decode_options())
        batches = pipeline_batches(loaded, clip_loader(dataset, batch_size, num_workers), candidate_labels,
                                   prompts[0])
    stage = "score" if loaded.family.kind == "scoring" else engine
    yield from with_progress(batches, len(clips), f"{stage} {loaded.name}", progress)
