"""Audio language models as zero-shot classifiers (zsa_eval/families/alm.py) on their tiny random twins: likelihood
scores against a plain forward pass, batch and worker invariance, generate-mode matching, resume, the cache, and
every setting they refuse."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from scipy.special import softmax

from conftest import ALM_MODEL_TYPES, SCORING_TWINS, compose_config, run_cli
from test_html_report import column, page_tables
from zsa_eval.answers import Match, filled_instruction, match_answer, normalized
from zsa_eval.data import Selection
from zsa_eval.engine import score_clips
from zsa_eval.errors import UserError
from zsa_eval.families.alm import AudioLanguageFamily
from zsa_eval.long_audio import long_audio_policy
from zsa_eval.models import load_model
from zsa_eval.report.compare import compare_runs
from zsa_eval.run import run
from zsa_eval.tasks.classification import answer_mistakes

MODEL_TYPES = ("qwen2_audio", "audioflamingo3")
LABELS = ["chirping birds", "dog", "vacuum cleaner", "sea waves", "a"]
INSTRUCTION = "What is the main sound in this recording? Answer with one of: {labels}."


def load_alm(tiny_alm_dirs, model_type: str, scoring: str = "likelihood", label_batch_size: int = 2):
    return load_model(model_type, str(tiny_alm_dirs[model_type]), torch.device("cpu"), "fp32", scoring=scoring,
                      max_new_tokens=8, label_batch_size=label_batch_size)


def clip(seed: int, seconds: float = 2.0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


def plain_log_likelihood(family: AudioLanguageFamily, inputs: dict, answer: str) -> float:
    """The plain way: the prompt and the whole answer (its end-of-turn token last) in one forward pass, no cache; the
    mean log-probability of the answer's tokens."""
    answer_ids = family.tokenizer(answer, add_special_tokens=False)["input_ids"] + [family.end_of_turn_id]
    ids = torch.cat([inputs["input_ids"], torch.tensor([answer_ids])], dim=1)
    with torch.inference_mode():
        logits = family.model(**inputs | {"input_ids": ids, "attention_mask": torch.ones_like(ids)}).logits[0]
    log_probs = logits.float().log_softmax(dim=-1)
    start = inputs["input_ids"].shape[1]
    return float(sum(log_probs[start - 1 + offset, token] for offset, token in enumerate(answer_ids)) / len(answer_ids))


@pytest.mark.parametrize("model_type", SCORING_TWINS)  # every scoring family's twin, those of alm_omni.py too
def test_likelihood_equals_a_plain_forward_pass_per_label(tiny_alm_dirs, model_type):
    family = load_alm(tiny_alm_dirs, model_type).family  # 2 answers per continuation pass: 3 passes of 5 answers
    inputs = family.preparer(filled_instruction(INSTRUCTION, LABELS))(clip(0), 0)
    fast = family.answer_log_likelihoods(inputs, family.answer_tokens(LABELS)).numpy()
    plain = np.array([plain_log_likelihood(family, inputs, label) for label in LABELS])
    np.testing.assert_allclose(fast, plain, atol=1e-4, rtol=0)
    assert np.ptp(plain) > 1e-3  # the labels' scores differ: the comparison is not between constants


@pytest.mark.parametrize("model_type", SCORING_TWINS)
def test_a_label_batch_is_one_packed_row_on_the_prompts_cache_left_as_it_was(tiny_alm_dirs, model_type):
    """Each label batch is one forward pass of one row, every answer but its last token end to end, on the prompt's
    own cache (not a copy per answer); afterwards the cache holds the prompt's keys and values alone, unchanged."""
    family = load_alm(tiny_alm_dirs, model_type, label_batch_size=3).family
    inputs = family.preparer("Which one?")(clip(0), 0)
    answers = family.answer_tokens(LABELS)
    prompt = family.read_prompt(inputs)
    before = [(layer.keys.clone(), layer.values.clone()) for layer in prompt.cache.layers]
    shapes = []
    hook = family.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    scores = family.continuation_log_likelihoods(prompt, answers)
    hook.remove()
    assert shapes == [(1, sum(len(answer) - 1 for answer in answers[start:start + 3])) for start in (0, 3)]
    assert prompt.cache.get_seq_length() == prompt.length == inputs["input_ids"].shape[1]
    for layer, (keys, values) in zip(prompt.cache.layers, before):
        assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
    np.testing.assert_allclose(scores.numpy(), family.answer_log_likelihoods(inputs, answers).numpy(), atol=1e-5)


@pytest.mark.parametrize("model_type", ALM_MODEL_TYPES)
def test_answers_are_tokenized_as_the_model_would_write_them(tiny_alm_dirs, model_type):
    """An answer's tokens alone are the tokens it gets written after the prompt, in one text."""
    family = load_alm(tiny_alm_dirs, model_type).family
    prompt = family.prompt_text("Which one?")
    prompt_ids = family.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for label, answer_ids in zip(LABELS, family.answer_tokens(LABELS)):
        written = family.tokenizer(prompt + label + family.end_of_turn, add_special_tokens=False)["input_ids"]
        assert written == prompt_ids + answer_ids


def test_prompt_holds_the_clip_and_the_instruction_in_each_chat_format(tiny_alm_dirs):
    """Qwen2-Audio: "Audio 1: <|audio_bos|><|AUDIO|>...<|audio_eos|>" before the text; Audio Flamingo 3: <sound>
    before it; both repeat the placeholder once per 40 ms of audio (2 s: 50) and end where the answer begins."""
    expected = {"qwen2_audio": "<|im_start|>user\nAudio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhich one?<|im_end|>\n"
                               "<|im_start|>assistant\n",
                "audioflamingo3": "<|im_start|>user\n<sound>Which one?<|im_end|>\n<|im_start|>assistant\n"}
    placeholder = {"qwen2_audio": "<|AUDIO|>", "audioflamingo3": "<sound>"}
    for model_type in MODEL_TYPES:
        family = load_alm(tiny_alm_dirs, model_type).family
        assert family.prompt_text("Which one?").endswith(expected[model_type])
        inputs = family.preparer("Which one?")(clip(0), 0)
        audio_id = family.tokenizer.convert_tokens_to_ids(placeholder[model_type])
        assert int((inputs["input_ids"] == audio_id).sum()) == 50
        assert inputs["input_features"].shape == (1, 128, 3000)


@pytest.mark.parametrize("answer, expected", [
    ("dog", Match(1, "exact")),                      # exact
    ("The Dog.", Match(1, "exact")),                 # normalized: case, article, punctuation
    ("Vacuum_Cleaner!", Match(2, "exact")),          # underscores
    ("sea-waves", Match(3, "exact")),                # hyphens
    ("a dog is barking", Match(1, "fuzzy")),         # fuzzy: one label inside the answer
    ("dogs", Match(1, "fuzzy")),                     # fuzzy: a close spelling (difflib ratio 0.86)
    ("the clock alarm rings", Match(5, "fuzzy")),    # a label inside a longer label that appears: the longer one
    ("dog and sea waves", Match(None, "none")),      # two labels: ambiguous
    ("birds", Match(None, "none")),                  # too far from "chirping birds" (ratio 0.53)
    ("silence", Match(None, "none")),
    ("", Match(None, "none")),
])
def test_answers_match_classes_exactly_after_normalization_then_fuzzily(answer, expected):
    labels = ["chirping birds", "dog", "vacuum_cleaner", "sea waves", "clock", "clock alarm"]
    assert match_answer(answer, labels) == expected


def test_the_instruction_lists_the_candidates_in_class_order():
    assert filled_instruction("Which? {labels}. Say {{one}}.", ["dog", "sea waves"]) == "Which? dog, sea waves. Say {one}."
    assert filled_instruction("What is it?", ["dog"]) == "What is it?"


def test_normalization_drops_case_punctuation_articles_and_underscores():
    assert normalized("  The  Crackling_Fire, an A-Team's!  ") == "crackling fire team s"


def scores_by_setting(family_loaded, esc50_folder: Path, batch_size: int, num_workers: int) -> np.ndarray:
    meta = pd.read_csv(esc50_folder / "meta" / "esc50.csv").head(5)
    paths = [str(esc50_folder / "audio" / name) for name in meta["filename"]]
    batches = score_clips(family_loaded, Selection(paths, list(range(len(paths)))), list(meta["filename"]),
                          LABELS[:3], ["{}", "It is {}."], "embed", batch_size, num_workers, 0, progress=False,
                          instruction=INSTRUCTION)
    return np.concatenate([batch.probabilities for batch in batches])


@pytest.mark.slow
def test_batch_size_and_workers_do_not_change_scores(tiny_alm_dirs, esc50_folder):
    loaded = load_alm(tiny_alm_dirs, "qwen2_audio")
    alone = scores_by_setting(loaded, esc50_folder, batch_size=1, num_workers=0)
    together = scores_by_setting(loaded, esc50_folder, batch_size=4, num_workers=2)
    np.testing.assert_array_equal(alone, together)
    assert alone.shape == (5, 3) and np.allclose(alone.sum(axis=1), 1)


def test_scores_are_the_softmax_of_the_prompts_mean_log_likelihood(tiny_alm_dirs, esc50_folder):
    """Two prompts: each class's logit is the mean of its two answers' log-likelihoods (a plain forward pass each)."""
    loaded = load_alm(tiny_alm_dirs, "audioflamingo3")
    path = str(esc50_folder / "audio" / pd.read_csv(esc50_folder / "meta" / "esc50.csv")["filename"][0])
    batch = next(score_clips(loaded, Selection([path], [0]), ["clip"], LABELS[:3], ["{}", "It is {}."], "embed", 1, 0,
                             0, progress=False, instruction=INSTRUCTION))
    from zsa_eval.audio import load_clip
    inputs = loaded.family.preparer(filled_instruction(INSTRUCTION, LABELS[:3]))(load_clip(path, 16000), 0)
    logits = np.array([np.mean([plain_log_likelihood(loaded.family, inputs, prompt.format(label))
                                for prompt in ("{}", "It is {}.")]) for label in LABELS[:3]])
    np.testing.assert_allclose(batch.logits[0], logits, atol=1e-4)
    np.testing.assert_allclose(batch.probabilities[0], np.exp(logits) / np.exp(logits).sum(), atol=1e-4)


# generate mode end to end: the answers are hand-written (the random model's own are noise), given in item order
PLANNED_ANSWERS = [
    ("chirping birds", "chirping_birds"), ("The Chirping-Birds.", "chirping_birds"), ("birds", ""),
    ("I hear a dog", "dog"),
    ("dogs", "dog"), ("dog", "dog"), ("a dog barking", "dog"), ("dog and vacuum cleaner", ""),
    ("vacuum cleaner", "vacuum_cleaner"), ("vacuum_cleaner", "vacuum_cleaner"), ("", ""), ("silence", ""),
]


@pytest.mark.slow
def test_generate_mode_matches_answers_and_counts_the_unmatched_as_wrong(tiny_alm_dirs, esc50_folder, tmp_path,
                                                                        monkeypatch):
    answers = iter(answer for answer, _ in PLANNED_ANSWERS)
    monkeypatch.setattr(AudioLanguageFamily, "generate_answer", lambda self, inputs: next(answers))
    out = tmp_path / "generate"
    metrics = run(compose_config("dataset=esc50_folder", f"dataset.path={esc50_folder}",
                                 "model=qwen2_audio_tiny_random", "model.scoring=generate", f"output_dir={out}"))
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    assert list(predictions["answer"]) == [answer for answer, _ in PLANNED_ANSWERS]  # the raw answers
    assert list(predictions["predicted_label"]) == [label for _, label in PLANNED_ANSWERS]
    correct = [label == true for (_, label), true in zip(PLANNED_ANSWERS, predictions["true_label"])]
    assert list(predictions["correct"]) == correct
    assert metrics["accuracy"] == pytest.approx(7 / 12)  # "birds" on a chirping_birds clip (class 0) counts wrong
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 4 + 3 / 4 + 2 / 4) / 3)
    assert metrics["n_unmatched"] == 4 and metrics["unmatched_fraction"] == pytest.approx(4 / 12)
    assert metrics["answer_matches"] == {"exact": 5, "fuzzy": 3, "none": 4}
    assert metrics["score_kind"] == "answer" and metrics["top_k"] == 1
    assert metrics["top_k_accuracy"] == metrics["accuracy"]
    unmatched = pd.read_csv(out / "unmatched.csv", keep_default_na=False)
    assert list(unmatched["answer"]) == ["birds", "dog and vacuum cleaner", "", "silence"]
    assert list(unmatched["true_label"]) == ["chirping_birds", "dog", "vacuum_cleaner", "vacuum_cleaner"]
    confusion = pd.read_csv(out / "confusion_matrix.csv", index_col="true_label")
    assert list(confusion["(no match)"]) == [1, 1, 2]
    assert confusion.loc["chirping_birds", "dog"] == 1
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores.filter(like="answer:").sum(axis=1).tolist() == [float(bool(label)) for _, label in PLANNED_ANSWERS]
    # report.html: the wrong answers with their text and what they matched, those that named a class first
    wrong = predictions[~predictions["correct"]].assign(named=lambda frame: frame["match"] == "none")
    expected = wrong.sort_values("named", kind="stable")
    mistakes = page_tables((out / "report.html").read_text())["mistakes-table"]
    assert mistakes["columns"] == ["#", "item", "clip", "true label", "answer", "matched", "match"]
    assert column(mistakes, "item") == expected["item_id"].tolist()
    assert column(mistakes, "answer") == ["I hear a dog", "birds", "dog and vacuum cleaner", "(empty)", "silence"]
    assert column(mistakes, "matched") == ["dog", "(no match)", "(no match)", "(no match)", "(no match)"]
    assert column(mistakes, "match") == ["fuzzy", "none", "none", "none", "none"]

    likelihood = run(compose_config("dataset=esc50_folder", f"dataset.path={esc50_folder}",
                                    "model=qwen2_audio_tiny_random", f"output_dir={tmp_path / 'likelihood'}"))
    comparison = compare_runs(out, tmp_path / "likelihood", resamples=200)
    deltas = comparison.metric_deltas.set_index("metric")
    assert deltas.loc["accuracy", "delta"] == pytest.approx(likelihood["accuracy"] - metrics["accuracy"])
    assert comparison.mcnemar["a_only_correct"] + comparison.mcnemar["b_only_correct"] == len(comparison.changed[
        comparison.changed["correct_a"] != comparison.changed["correct_b"]])


def test_generate_mode_mistakes_show_the_answers_those_naming_a_class_first():
    """The wrong answers, not scores (every unmatched answer scores 0): each with its text and the class it matched
    or none; the model's confusions (exact, then fuzzy matches) before answers that named no class, in item order,
    at most `per_class` of one true label."""
    predictions = pd.DataFrame({
        "item_id": ["1", "2", "3", "4", "5", "6"], "true_label": ["dog", "dog", "dog", "cat", "cat", "cat"],
        "predicted_label": ["", "cat", "dog", "", "dog", "dog"], "correct": [False, False, True, False, False, False],
        "answer": ["", "a cat", "dog", "meow?", "dog", "dogs"], "match": ["none", "fuzzy", "exact", "none", "exact",
                                                                        "fuzzy"]})
    found = answer_mistakes(predictions, [10, 11, 12, 13, 14, 15], per_class=2, total=4)
    assert [(mistake.title, mistake.clips[0][1]) for mistake in found.items] == [("5", 14), ("2", 11), ("6", 15),
                                                                                  ("1", 10)]
    assert [mistake.fields for mistake in found.items] == [
        {"true label": "cat", "answer": "dog", "matched": "dog", "match": "exact"},
        {"true label": "dog", "answer": "a cat", "matched": "cat", "match": "fuzzy"},
        {"true label": "cat", "answer": "dogs", "matched": "dog", "match": "fuzzy"},
        {"true label": "dog", "answer": "(empty)", "matched": "(no match)", "match": "none"}]
    assert found.description.startswith("4 of the 5 wrong answers (3 named another class, 2 matched no class;")


@pytest.mark.slow
@pytest.mark.parametrize("model_type", SCORING_TWINS)
def test_an_interrupted_run_resumes_with_the_same_scores(tiny_alm_dirs, tmp_path, monkeypatch, model_type):
    """Every scoring twin: a run cut after one batch (and a line torn by a kill) resumes, scoring only the rest."""
    out = tmp_path / "run"
    overrides = ["dataset=synthetic", f"model={model_type}_tiny_random", "limit=6", "batch_size=2",
                 f"output_dir={out}"]
    complete = run(compose_config(*overrides))
    predictions = (out / "predictions.csv").read_bytes()
    log = out / "progress.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2]) + lines[2][:40])  # one batch and a line torn by a kill
    (out / "metrics.json").unlink()
    scored = []
    score = AudioLanguageFamily.answer_log_likelihoods
    monkeypatch.setattr(AudioLanguageFamily, "answer_log_likelihoods",
                        lambda self, inputs, answers: scored.append(1) or score(self, inputs, answers))
    resumed = run(compose_config(*overrides, "resume=true"))
    assert len(scored) == 6 - 2 and resumed["resumed_items"] == 2
    assert (out / "predictions.csv").read_bytes() == predictions
    assert resumed["accuracy"] == complete["accuracy"]


@pytest.mark.slow
def test_the_cache_stores_nothing_for_an_audio_language_model(tiny_alm_dirs, esc50_folder, tmp_path):
    cache_dir = tmp_path / "cache"
    overrides = ["dataset=esc50_folder", f"dataset.path={esc50_folder}", "model=qwen2_audio_tiny_random",
                 f"model.name_or_path={tiny_alm_dirs['qwen2_audio']}", f"cache_dir={cache_dir}", "cache=true",
                 "limit=3"]
    first = run(compose_config(*overrides, f"output_dir={tmp_path / 'first'}"))
    second = run(compose_config(*overrides, f"output_dir={tmp_path / 'second'}"))
    assert not (cache_dir / "audio_embeddings").exists()
    assert first["cache_hits"] == second["cache_hits"] == 0
    assert pd.read_parquet(tmp_path / "first" / "scores.parquet").equals(
        pd.read_parquet(tmp_path / "second" / "scores.parquet"))


@pytest.mark.slow
def test_a_likelihood_run_records_its_instruction_and_scores(tiny_alm_dirs, esc50_folder, tmp_path, monkeypatch,
                                                             capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={esc50_folder}",
                              "model=qwen2_audio_tiny_random", f"output_dir={out}")
    assert code == 0 and "accuracy" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["family"] == "qwen2_audio" and metrics["score_kind"] == "softmax"
    assert metrics["prompts"] == ["{}"]  # template=auto: the model's own answer form
    assert metrics["instruction"] == metrics["identity"]["instruction"] == INSTRUCTION
    assert metrics["identity"]["family_settings"] == {"scoring": "likelihood"}
    scores = pd.read_parquet(out / "scores.parquet")
    probabilities = scores.filter(like="prob:").to_numpy()
    logits = scores.filter(like="logit:").to_numpy()
    np.testing.assert_allclose(probabilities, softmax(logits, axis=1), atol=1e-6)
    assert (logits < 0).all()  # mean log-probabilities


@pytest.mark.slow
def test_a_multilabel_run_ranks_clips_by_the_label_log_likelihoods(tiny_alm_dirs, tmp_path):
    from sklearn.metrics import label_ranking_average_precision_score

    folder = tmp_path / "tags"
    folder.mkdir()
    for index, name in enumerate(["bell.wav", "alarm.wav", "voice.wav", "mix.wav"]):
        sf.write(folder / name, clip(index, seconds=0.5), 16000)
    (folder / "metadata.csv").write_text("file_name,tags\nbell.wav,bell;chime\nalarm.wav,alarm;chime\n"
                                         "voice.wav,speech\nmix.wav,bell;speech\n")
    out = tmp_path / "run"
    metrics = run(compose_config("dataset=audiofolder", f"dataset.path={folder}", "dataset.label_column=tags",
                                 "dataset.task=multilabel", 'dataset.label_delimiter=";"',
                                 "model=qwen2_audio_tiny_random", f"output_dir={out}"))
    scores = pd.read_parquet(out / "scores.parquet")
    classes = ["alarm", "bell", "chime", "speech"]
    truth = np.array([[name in labels.split("|") for name in classes] for labels in scores["true_label"]])
    logits = scores[[f"logit:{name}" for name in classes]].to_numpy()
    assert metrics["task"] == "multilabel" and metrics["score_kind"] == "softmax"
    assert metrics["lrap"] == pytest.approx(label_ranking_average_precision_score(truth, logits))


def captions_folder(root: Path) -> Path:
    root.mkdir()
    for number in range(2):
        sf.write(root / f"{number}.wav", clip(number), 16000)
    pd.DataFrame({"file_name": ["0.wav", "1.wav"], "caption": ["a dog", "rain"]}).to_csv(root / "metadata.csv",
                                                                                          index=False)
    return root


@pytest.mark.parametrize("overrides, message", [
    (["model.scoring=bogus"], "model.scoring=bogus is not valid: model.scoring takes one of likelihood, generate"),
    (["model.max_new_tokens=0"], "model.max_new_tokens=0 is not valid"),
    (["template.instruction='Which {label} is it?'"], "has the slot {label}: its only slot is {labels}"),
    (["template.instruction='Which is it? {'"], "is not a valid template"),
    (["model.scoring=generate", "template.instruction='What is this sound?'"],
     "model.scoring=generate needs the instruction to list the candidates"),
    (["template.instruction=null"], "an audio language model needs an instruction"),
    (["engine=pipeline"], "engine=pipeline cannot run"),
    (["save_embeddings=true"], "have no audio or text embeddings; drop save_embeddings=true"),
    (["long_audio=windows"], "long_audio=windows: qwen2_audio models hear each clip whole (up to their own limit) "
     "and score it; they have no embedding to pool over windows: use long_audio=native"),
])
def test_bad_settings_are_one_line_and_exit_2(tiny_alm_dirs, esc50_folder, tmp_path, monkeypatch, capsys,
                                              overrides, message):
    code, _, stderr = run_cli(monkeypatch, capsys, "dataset=esc50_folder", f"dataset.path={esc50_folder}",
                              "model=qwen2_audio_tiny_random", f"output_dir={tmp_path / 'run'}", *overrides)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("zsa-eval: error: ") and message in stderr
    assert not (tmp_path / "run").exists()


def test_what_other_tasks_and_families_refuse(tiny_alm_dirs, tiny_model_dir, esc50_folder, tmp_path, monkeypatch,
                                              capsys):
    folder = captions_folder(tmp_path / "captions")
    cases = [
        (["dataset=captions_folder", f"dataset.path={folder}", "model=qwen2_audio_tiny_random",
          "model.scoring=generate"], "it ranks captions, and model.scoring=generate gives one answer per clip"),
        (["dataset=captions_folder", f"dataset.path={folder}", "model=audioflamingo3_tiny_random"],
         "it needs audio and caption embeddings, which audioflamingo3 models do not have"),
        (["dataset=fsd50k", "model=qwen2_audio_tiny_random", "model.scoring=generate"],
         "is multi-label: its metrics rank every label of every clip"),
        (["dataset=esc50_folder", f"dataset.path={esc50_folder}", "model=tiny_random", "+model.scoring=generate"],
         "model.scoring=generate needs an audio language model"),
        (["dataset=esc50_folder", f"dataset.path={esc50_folder}", "model=qwen2_audio_tiny_random",
          "protocol=linear_probe"], "protocol=linear_probe trains on audio embeddings, and qwen2_audio models give "
         "none (they score labels by their answers): use protocol=zeroshot"),
        (["dataset=esc50_folder", f"dataset.path={esc50_folder}", "model=audioflamingo3_tiny_random",
          "protocol=few_shot"], "protocol=few_shot trains on audio embeddings, and audioflamingo3 models give none"),
    ]
    for overrides, message in cases:
        code, _, stderr = run_cli(monkeypatch, capsys, *overrides, f"output_dir={tmp_path / 'run'}")
        assert (code, stderr.count("\n")) == (2, 1) and message in stderr, stderr
    assert not (tmp_path / "run").exists()


def test_clips_longer_than_what_the_model_hears_are_counted(tiny_alm_dirs, tmp_path):
    """Qwen2-Audio hears the first 30 s of a clip (the Whisper window), Audio Flamingo 3 up to 600 s: a 35 s clip is
    counted as longer for the one, not for the other (long_audio=native), and metrics.json and report.html say what
    the longer clip came to."""
    rate = 16000
    for label, frequency, seconds in (("hum", 150.0, 35.0), ("beep", 2000.0, 2.0)):
        (tmp_path / "sounds" / label).mkdir(parents=True)
        t = np.arange(int(rate * seconds)) / rate
        sf.write(tmp_path / "sounds" / label / "a.wav", (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32),
                 rate)
    heard = {}
    for model in ("qwen2_audio_tiny_random", "audioflamingo3_tiny_random"):
        metrics = run(compose_config("dataset=audiofolder", f"dataset.path={tmp_path / 'sounds'}", f"model={model}",
                                     f"output_dir={tmp_path / model}"))
        long_audio = metrics["long_audio"]
        heard[model] = (long_audio["window_s"], long_audio["n_clips_longer"], long_audio["long_clips_heard"])
    assert heard == {"qwen2_audio_tiny_random": (30.0, 1, "only the first 30 s heard"),
                     "audioflamingo3_tiny_random": (600.0, 0, "only the first 600 s heard")}
    page = (tmp_path / "qwen2_audio_tiny_random" / "report.html").read_text()
    assert "long_audio=native: 1 clip longer than the 30 s window, only the first 30 s heard" in page
    assert "What is the main sound in this recording? Answer with one of: {labels}." in page  # what it was asked


def test_the_engine_refuses_windows_for_an_audio_language_model(tiny_alm_dirs, esc50_folder):
    """Called as a library, the engine refuses a policy the family cannot hear rather than scoring a first window."""
    loaded = load_alm(tiny_alm_dirs, "qwen2_audio")
    windows = long_audio_policy({"name": "windows"}, loaded.family.window_seconds, loaded.sampling_rate, "qwen2_audio")
    path = str(next((esc50_folder / "audio").iterdir()))
    with pytest.raises(UserError, match="long_audio=windows: qwen2_audio models hear each clip whole"):
        next(score_clips(loaded, Selection([path], [0]), ["a"], LABELS[:3], ["{}"], "embed", 1, 0, 0, progress=False,
                         long_audio=windows, instruction=INSTRUCTION))
