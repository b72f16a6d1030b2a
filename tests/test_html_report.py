"""The HTML pages: a run's report.html (metrics, tables, the mistakes each task names, with clips written again to
listen to), leaderboard.html and compare.html; text escaped; a report that fails or is turned off; and the pages
opened in a real browser (headless Chromium) where one is installed."""

import html
import io
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import compose_config, run_cli, tone
from test_multilabel import FSD_SETS, write_fsd50k_schema
from test_sweeps import png_shape, write_run
from zsa_eval.report.__main__ import main as report_main
from zsa_eval.report.html import CLIP_RATE
from zsa_eval.report.run_report import metric_rows, write_report
from zsa_eval.run import run
from zsa_eval.results import Mistake, Mistakes
from zsa_eval.tasks.classification import confident_mistakes
from zsa_eval.tasks.tagging import worst_ranked_labels

HOSTILE_CLASS = "<script>alert(1)"  # a class folder's name (a folder name cannot hold "/")
HOSTILE_CAPTION = '<script>alert("caption")</script> a tone'
OUR_SCRIPTS = 1  # the page's own inline table-sorting script


class TableReader(HTMLParser):
    """A page's tables by id: the column names, and each row's cells as their text and their player's file."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.table = self.row = self.cell = None
        self.in_head = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.table = self.tables.setdefault(dict(attrs)["id"], {"columns": [], "rows": []})
        elif tag == "thead":
            self.in_head = True
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = {"text": "", "audio": None}
        elif tag == "audio":
            self.cell["audio"] = dict(attrs)["src"]

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.table is not None:
            if self.in_head:
                self.table["columns"] = [cell["text"] for cell in self.row]
            else:
                self.table["rows"].append(self.row)
        elif tag == "thead":
            self.in_head = False
        elif tag == "table":
            self.table = None


def page_tables(page: str) -> dict[str, dict]:
    reader = TableReader()
    reader.feed(page)
    return reader.tables


def column(table: dict, name: str, part: str = "text") -> list:
    at = table["columns"].index(name)
    return [row[at][part] for row in table["rows"]]


def unique_ids(page: str) -> bool:
    """Every element id of a page names one element (the scripts find tables by id)."""
    ids = re.findall(r' id="([^"]+)"', page)
    return len(ids) == len(set(ids))


def audio_sources(page: str) -> list[str]:
    return re.findall(r'<audio [^>]*src="([^"]+)"', page)


def metric_card(page: str, name: str) -> tuple[str, str | None]:
    """The value and interval a report's card shows for a metric."""
    found = re.search(rf'data-metric="{name}">.*?<div class="value">([^<]*)</div>\s*'
                      r'(?:<div class="interval">([^<]*)</div>)?', page, re.S)
    assert found, name
    return found.group(1), found.group(2)


def test_confident_mistakes_are_the_most_confident_wrong_predictions_per_class_and_in_all():
    predictions = pd.DataFrame({"item_id": list("abcdef"), "true_label": ["dog", "dog", "dog", "cat", "dog", "cat"],
                                "score": [0.9, 0.8, 0.95, 0.7, 0.85, 0.99],
                                "correct": [False, False, True, False, False, False]})
    assert confident_mistakes(predictions, per_class=2, total=3)["item_id"].tolist() == ["f", "a", "e"]
    assert confident_mistakes(predictions, per_class=2, total=10)["item_id"].tolist() == ["f", "a", "e", "d"]
    assert confident_mistakes(predictions, per_class=5, total=10).index.tolist() == [5, 0, 4, 1, 3]


def test_worst_ranked_labels_by_hand():
    y_true = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=bool)
    scores = np.array([[0.1, 0.5, 0.9],    # its label ranks 3rd
                       [0.9, 0.2, 0.5],    # 2 labels: label 0 ranks 1st, label 1 3rd (a false label outranks it)
                       [0.3, 0.3, 0.3],    # ties rank in class order: label 2 is 3rd
                       [0.4, 0.6, 0.1]])   # its label ranks 2nd
    every = worst_ranked_labels(y_true, scores, per_class=5, total=10)
    assert every[["clip", "label", "rank"]].values.tolist() == [[0, 0, 3], [1, 1, 3], [2, 2, 3], [3, 0, 2]]
    assert every["score"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert worst_ranked_labels(y_true, scores, per_class=1, total=10)["clip"].tolist() == [0, 1, 2]
    assert worst_ranked_labels(y_true, scores, per_class=1, total=2)["clip"].tolist() == [0, 1]


def wav_bytes(seconds: float = 0.5, rate: int = 44100, channels: int = 2) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(440.0, rate, seconds, channels), rate, format="WAV")
    return buffer.getvalue()


def hand_made_report(output_dir: Path) -> dict:
    """A report of hand-made results whose class names, prompt, mistake and reference hold markup; clip 0 is a
    stereo 44.1 kHz WAV, clip 1 bytes that no decoder reads."""
    output_dir.mkdir()
    (output_dir / "metrics.json").write_text("{}")
    metrics = {"task": "classification", "dataset": "sounds", "model": "tiny", "template": "plain",
               "status": "complete", "accuracy": 0.25, "accuracy_ci95": [0.1, 0.4], "chance_accuracy": 0.5, "main_score": "accuracy",
               "chance_metric": "chance_accuracy", "prompts": ["<b>{}</b> sound"],
               "leaderboard_metrics": [{"name": "accuracy", "label": "accuracy", "higher_is_better": True,
                                        "interval": True, "shown": True, "whole": False}],
               "references": [{"title": "<script>alert('ref')</script>", "url": "https://example.org/paper"}],
               "identity": {"dataset": "sounds"}}
    results = SimpleNamespace(figures={}, tables={"per_class": pd.DataFrame(
        {"label": [HOSTILE_CLASS, "dog"], "recall": [0.5, 0.0], "support": [2, 2]})})
    mistakes = Mistakes("The wrong ones.", [
        Mistake("clip <0>", (("clip", 0),), {"true label": HOSTILE_CLASS, "caption": HOSTILE_CAPTION, "score": 0.75}),
        Mistake("clip 1", (("clip", 1),), {"true label": "dog", "caption": "a dog", "score": 0.5}),
    ])
    return write_report(output_dir, metrics, results, mistakes, [wav_bytes(), b"not audio at all"])


def test_a_report_shows_markup_in_names_and_captions_as_text_and_names_clips_it_cannot_decode(tmp_path):
    outcome = hand_made_report(tmp_path / "run")
    page = (tmp_path / "run" / "report.html").read_text()
    assert outcome == {"written": True, "file": "report.html", "mistakes": 2, "clips": 1, "undecodable_clips": 1}
    assert page.count("<script") == OUR_SCRIPTS and "<b>" not in page and unique_ids(page)
    assert page.count(html.escape(HOSTILE_CLASS)) == 2  # the per-class table and the mistake (the caption aside)
    assert page.count(html.escape(HOSTILE_CAPTION, quote=False).replace('"', "&#34;")) == 1
    assert "&lt;script&gt;alert(&#39;ref&#39;)&lt;/script&gt;" in page and "&lt;b&gt;{}&lt;/b&gt; sound" in page
    mistakes = page_tables(page)["mistakes-table"]
    assert mistakes["columns"] == ["#", "item", "clip", "true label", "caption", "score"]
    assert column(mistakes, "caption") == [HOSTILE_CAPTION, "a dog"]  # as text, once unescaped
    assert column(mistakes, "item") == ["clip <0>", "clip 1"] and column(mistakes, "score") == ["0.7500", "0.5000"]
    assert '<a href="https://example.org/paper">' in page
    assert metric_card(page, "accuracy") == ("0.2500", "[0.1000, 0.4000]")
    assert metric_card(page, "chance_accuracy") == ("0.5000", None)
    # the clip that decodes is written again mono at 16 kHz; the other is named with its reason
    assert audio_sources(page) == ["report_assets/clip-000000.flac"]
    samples, rate = sf.read(tmp_path / "run" / "report_assets" / "clip-000000.flac")
    assert rate == CLIP_RATE and samples.ndim == 1 and len(samples) == CLIP_RATE // 2
    [undecodable] = re.findall(r'<ul class="problem" id="undecodable"><li>([^<]*)</li>', page)
    assert html.unescape(undecodable).startswith("clip 1 (clip): could not be decoded again (undecodable audio: ")
    assert column(mistakes, "clip")[1].startswith("clip: could not be decoded again")


def spec(name: str, label: str, **declared) -> dict:
    return {"name": name, "label": label, "higher_is_better": True, "interval": True, "shown": True, "whole": False,
            **declared}


def test_metric_cards_name_top_k_by_its_k_and_show_ranks_as_whole_numbers():
    """k is a count, not a measurement: no card of its own, its value in the top-k card's label; a median rank (a
    whole number) is shown as one, a mean rank with its decimals."""
    top_k = {"accuracy": 0.5, "accuracy_ci95": [0.4, 0.6], "top_k": 5, "top_k_accuracy": 0.75,
             "top_k_accuracy_ci95": [0.625, 0.875], "main_score": "accuracy",
             "leaderboard_metrics": [spec("accuracy", "accuracy"), spec("top_k", "k", interval=False, whole=True),
                                     spec("top_k_accuracy", "top-k")]}
    assert [(row["name"], row["label"], row["value"], row["interval"]) for row in metric_rows(top_k)] == [
        ("accuracy", "accuracy", "0.5000", "[0.4000, 0.6000]"),
        ("top_k_accuracy", "top-5", "0.7500", "[0.6250, 0.8750]")]
    ranks = {"t2a_median_rank": 10.0, "t2a_median_rank_ci95": [2.0, 18.5], "t2a_mean_rank": 8.1666,
             "t2a_mean_rank_ci95": [2.6667, 15.0],
             "leaderboard_metrics": [spec("t2a_median_rank", "T2A median rank", higher_is_better=False, whole=True),
                                     spec("t2a_mean_rank", "T2A mean rank", higher_is_better=False)]}
    assert [(row["label"], row["value"], row["interval"], row["better"]) for row in metric_rows(ranks)] == [
        ("T2A median rank", "10", "[2, 18.5]", "lower"), ("T2A mean rank", "8.1666", "[2.6667, 15.0000]", "lower")]


def test_the_leaderboard_page_shows_what_groups_its_rows_and_links_each_report_by_the_model(tmp_path):
    """Rows of one dataset from two sources are grouped by source: the page shows it beside the dataset (not among
    the details off to the right), the report link beside the model, and the board over the whole window."""
    for name, source, accuracy in (("x1", "/data/x", 0.2250), ("y1", "/data/y", 0.8125), ("x2", "/data/x", 0.5)):
        identity = {"dataset": "d", "dataset_source": source, "model_name_or_path": name, "template": "t"}
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({
            "dataset": "d", "model": name, "template": "t", "accuracy": accuracy, "accuracy_ci95": [0.1, 0.9],
            "n_evaluated": 8, "started_at": "2026-01-01T00:00:00", "identity": identity, "status": "complete"}))
    (tmp_path / "y1" / "report.html").write_text("<html></html>")
    assert report_main(["leaderboard", str(tmp_path)]) == 0
    page = (tmp_path / "leaderboard.html").read_text()
    board = page_tables(page)["leaderboard-table"]
    assert board["columns"][:4] == ["dataset", "source", "model", "report"]
    assert list(zip(column(board, "source"), column(board, "accuracy [95% CI]"))) == [
        ("/data/x", "0.5000 [0.1000, 0.9000]"), ("/data/x", "0.2250 [0.1000, 0.9000]"),
        ("/data/y", "0.8125 [0.1000, 0.9000]")]
    assert column(board, "report") == ["(none)", "(none)", "report"]
    assert re.findall(r'<a href="([^"]+)">([^<]+)</a>', page) == [("y1/report.html", "report")]
    assert '<main class="wide">' in page


def test_compare_is_named_after_its_runs_and_says_its_test_in_words(tmp_path, monkeypatch, capsys):
    labels = ["cat", "dog"]
    runs = []
    for name, model, predicted in (("20261201-101010-000001", "clap", "cat"),
                                   ("20261201-101011-000002", "pe_audio", "dog")):
        run_dir = write_run(tmp_path / name, labels, [("1", "cat", predicted), ("2", "dog", "dog")])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        (run_dir / "metrics.json").write_text(json.dumps(metrics | {"dataset": "esc50", "model": model,
                                                                    "template": "sound_of"}))
        runs.append(run_dir)
    monkeypatch.setenv("ZSA_EVAL_RESULTS", str(tmp_path / "results"))
    assert report_main(["compare", *map(str, runs), "--resamples", "20"]) == 0
    assert capsys.readouterr().out.startswith("# clap sound_of vs pe_audio sound_of on esc50\n")
    [folder] = (tmp_path / "results" / "compare").iterdir()
    assert re.fullmatch(r"clap_sound_of__vs__pe_audio_sound_of__on__esc50-[0-9a-f]{6}", folder.name)
    page = (folder / "compare.html").read_text()
    assert "<title>clap sound_of vs pe_audio sound_of on esc50</title>" in page
    tests = re.search(r'<section id="tests">(.*?)</section>', page, re.S).group(1)
    assert "p_value" not in tests and "a_only_correct" not in tests and html.unescape(tests).count("<li>") == 1
    assert "A alone got 1 of the common items right, B alone 0; with equal accuracies these would split evenly" in tests
    assert "p = 1, not significant at 0.05." in tests


def test_compare_and_leaderboard_exit_as_they_would_when_their_reader_stops_early(tmp_path):
    """`compare A B | head`: the reader closes the pipe before the result is printed; the files are written, the
    command exits 0 and says nothing of a broken pipe."""
    labels = ["cat", "dog"]
    run_a = write_run(tmp_path / "a", labels, [("1", "cat", "cat"), ("2", "dog", "cat")])
    run_b = write_run(tmp_path / "b", labels, [("1", "cat", "dog"), ("2", "dog", "dog")])
    for arguments in (["compare", str(run_a), str(run_b), "--out", str(tmp_path / "out"), "--resamples", "20"],
                      ["leaderboard", str(tmp_path / "board")]):
        if arguments[0] == "leaderboard":
            (tmp_path / "board" / "run").mkdir(parents=True)
            (tmp_path / "board" / "run" / "metrics.json").write_text(json.dumps(
                {"dataset": "d", "model": "m", "template": "t", "accuracy": 0.5, "n_evaluated": 2,
                 "started_at": "2026-01-01T00:00:00"}))
        reader_gone = subprocess.Popen([sys.executable, "-m", "zsa_eval.report", *arguments], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
        reader_gone.stdout.close()
        errors = reader_gone.stderr.read()
        assert reader_gone.wait(timeout=120) == 0 and "Traceback" not in errors and "BrokenPipe" not in errors
    assert (tmp_path / "out" / "compare.md").is_file() and (tmp_path / "board" / "leaderboard.md").is_file()


@pytest.fixture(scope="module")
def classification_results(tmp_path_factory, tiny_model_dir) -> Path:
    """A results directory holding a run of the tiny model on a folder of 3 classes x 3 clips, one class named with
    markup (at most 2 mistakes of a class and 3 in all), and a run without a report."""
    root = tmp_path_factory.mktemp("html")
    for index, name in enumerate(["dog", HOSTILE_CLASS, "rain"]):
        (root / "sounds" / name).mkdir(parents=True)
        for take in range(3):
            sf.write(root / "sounds" / name / f"{take}.wav", tone(200.0 * (index + 1) + 30 * take, 22050, 0.6, 2),
                     22050)
    run(compose_config("dataset=audiofolder", f"dataset.path={root / 'sounds'}", "model=tiny_random",
                       f"results_dir={root / 'results'}", f"output_dir={root / 'results' / 'run'}",
                       "report_mistakes=3", "report_mistakes_per_class=2"))
    run(compose_config("dataset=synthetic", "model=tiny_random", "limit=5", "report=false",
                       f"results_dir={root / 'results'}", f"output_dir={root / 'results' / 'no_report'}"))
    return root / "results"


@pytest.mark.slow
def test_a_run_writes_a_report_of_its_metrics_and_its_most_confident_mistakes(classification_results):
    run_dir = classification_results / "run"
    page = (run_dir / "report.html").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for spec in metrics["leaderboard_metrics"]:
        low, high = metrics[f"{spec['name']}_ci95"]
        assert metric_card(page, spec["name"]) == (f"{metrics[spec['name']]:.4f}", f"[{low:.4f}, {high:.4f}]")
    predictions = pd.read_csv(run_dir / "predictions.csv", keep_default_na=False)
    wrong = predictions[~predictions["correct"]].sort_values("score", ascending=False, kind="stable")
    expected = wrong.groupby("true_label", sort=False).head(2).head(3)
    assert metrics["report"] == {"written": True, "file": "report.html", "mistakes": len(expected),
                                 "clips": len(expected), "undecodable_clips": 0}
    mistakes = page_tables(page)["mistakes-table"]
    assert column(mistakes, "item") == expected["item_id"].tolist()
    assert column(mistakes, "true label") == expected["true_label"].tolist()
    assert column(mistakes, "score (softmax)") == expected["score"].map("{:.4f}".format).tolist()
    assert column(mistakes, "top 3") == [f"{row.top1_label} {row.top1_score:.4f}\n{row.top2_label} "
                                         f"{row.top2_score:.4f}\n{row.top3_label} {row.top3_score:.4f}"
                                         for row in expected.itertuples()]  # one a line
    assert page.count("<script") == OUR_SCRIPTS and html.escape(HOSTILE_CLASS) in page
    sources = column(mistakes, "clip", "audio")
    assert len(sources) == len(expected) and sorted(path.name for path in (run_dir / "report_assets").iterdir()) \
        == sorted(Path(source).name for source in sources)
    for source, path in zip(sources, expected["path"]):
        samples, rate = sf.read(run_dir / source)
        original, original_rate = sf.read(path)
        assert rate == CLIP_RATE and samples.ndim == 1
        assert len(samples) == round(len(original) * CLIP_RATE / original_rate)
    assert 'data:image/png;base64,' in page  # the confusion matrix, inline
    assert (classification_results / "leaderboard.html").is_file()


@pytest.mark.slow
def test_the_leaderboard_page_links_each_run_to_its_report(classification_results):
    page = (classification_results / "leaderboard.html").read_text()
    board = pd.read_csv(classification_results / "leaderboard.csv")
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', page)
    assert links == [("run/report.html", "report")]  # the run without a report has none to link
    shown = page_tables(page)["leaderboard-table"]
    assert column(shown, "run_dir") == board["run_dir"].tolist() and set(board["run_dir"]) == {"run", "no_report"}
    assert column(shown, "report") == ["report" if run_dir == "run" else "(none)" for run_dir in board["run_dir"]]
    # what a row is, its report and how it scores before the details, so a page of ordinary width shows the scores
    assert shown["columns"][:3] == ["dataset", "model", "report"]
    assert shown["columns"].index("accuracy [95% CI]") < shown["columns"].index("run_dir") < shown["columns"].index(
        "engine")
    assert column(shown, "accuracy [95% CI]") == [
        f"{row.accuracy:.4f} [{row.accuracy_ci95_low:.4f}, {row.accuracy_ci95_high:.4f}]" for row in board.itertuples()]
    assert page.count("data:image/png;base64,") == 2 and 'id="by-dataset-table"' in page
    assert page.count("<script") == OUR_SCRIPTS and unique_ids(page)


@pytest.mark.slow
def test_report_false_writes_no_report_and_a_failing_report_costs_no_result(tiny_model_dir, tmp_path, monkeypatch,
                                                                             capsys):
    arguments = ("dataset=synthetic", "model=tiny_random", "limit=5")
    code, _, _ = run_cli(monkeypatch, capsys, *arguments, "report=false", f"output_dir={tmp_path / 'off'}")
    assert code == 0
    assert not (tmp_path / "off" / "report.html").exists() and not (tmp_path / "off" / "report_assets").exists()
    assert json.loads((tmp_path / "off" / "metrics.json").read_text())["report"] == {"written": False,
                                                                                    "reason": "report=false"}

    def broken(*args, **kwargs):
        raise RuntimeError("the template broke")

    monkeypatch.setattr("zsa_eval.report.run_report.render", broken)
    code, stdout, stderr = run_cli(monkeypatch, capsys, *arguments, f"output_dir={tmp_path / 'failed'}")
    assert code == 0 and stdout.startswith("synthetic | tiny_random | auto: accuracy ")
    assert ("zsa-eval: warning: report.html was not written (RuntimeError: the template broke); every other result "
            f"is in {tmp_path / 'failed'}") in stderr
    written = {path.name for path in (tmp_path / "failed").iterdir()}
    assert written == {path.name for path in (tmp_path / "off").iterdir()}  # every result, no report
    metrics = json.loads((tmp_path / "failed" / "metrics.json").read_text())
    assert metrics["report"] == {"written": False, "error": "RuntimeError: the template broke"}
    assert metrics["accuracy"] == pytest.approx(pd.read_csv(tmp_path / "failed" / "predictions.csv")["correct"].mean())


@pytest.mark.slow
def test_a_clip_that_cannot_be_decoded_again_is_named_in_the_report(tiny_model_dir, writable_audiofolder, tmp_path,
                                                                   monkeypatch, capsys):
    arguments = ("dataset=audiofolder", f"dataset.path={writable_audiofolder}", "model=tiny_random",
                 f"output_dir={tmp_path / 'run'}")
    assert run_cli(monkeypatch, capsys, *arguments)[0] == 0
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())["report"]
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv", keep_default_na=False)
    damaged = predictions.loc[~predictions["correct"], "path"].iloc[0]
    Path(damaged).write_bytes(b"RIFF this file was damaged after the run")
    assert run_cli(monkeypatch, capsys, *arguments, "resume=true")[0] == 0  # re-finishes from its log
    page = (tmp_path / "run" / "report.html").read_text()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["report"] == \
        first | {"clips": first["clips"] - 1, "undecodable_clips": 1}
    [named] = re.findall(r'<ul class="problem" id="undecodable"><li>([^<]*)</li>', page)
    item = predictions.loc[predictions["path"] == damaged, "item_id"].iloc[0]
    assert html.unescape(named).startswith(f"{item} (clip): could not be decoded again (undecodable audio")
    assert len(audio_sources(page)) == first["clips"] - 1


@pytest.mark.slow
def test_a_retrieval_report_lists_the_worst_ranked_captions_with_the_clip_they_retrieved_first(
        tiny_model_dir, tmp_path, monkeypatch, capsys):
    root = tmp_path / "captioned"
    root.mkdir()
    rows = [{"file_name": f"clip{clip}.wav", "caption": f"{HOSTILE_CAPTION} {clip} heard {n} times"}
            for clip in range(4) for n in range(3)]
    for clip in range(4):
        sf.write(root / f"clip{clip}.wav", tone(250.0 * (clip + 1), 48000, 0.5), 48000)
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    out = tmp_path / "run"
    assert run_cli(monkeypatch, capsys, "dataset=captions_folder", f"dataset.path={root}", "model=tiny_random",
                   f"output_dir={out}", "report_mistakes_per_class=2")[0] == 0
    ranks = pd.read_csv(out / "ranks.csv", keep_default_na=False)
    captions = ranks[(ranks["direction"] == "text_to_audio") & (ranks["rank"] > 1)].assign(
        clip=lambda frame: frame["query_id"].str.rsplit("#", n=1).str[0])
    expected = captions.sort_values("rank", ascending=False, kind="stable").groupby("clip", sort=False).head(2)
    page = (out / "report.html").read_text()
    mistakes = page_tables(page)["mistakes-table"]
    assert len(expected) > 0 and column(mistakes, "item") == expected["query_id"].tolist()
    assert column(mistakes, "caption") == expected["query"].tolist()  # the markup as text
    assert column(mistakes, "its clip's rank") == expected["rank"].astype(str).tolist()
    clip_file = {f"clip{clip}.wav": f"report_assets/clip-{clip:06d}.flac" for clip in range(4)}  # dataset order
    # each column headed once: the players apart from the ids of the clips they play
    assert mistakes["columns"] == ["#", "item", "its clip (listen)", "retrieved first (listen)", "caption", "its clip",
                                   "its clip's rank", "retrieved first"]
    assert column(mistakes, "its clip (listen)", "audio") == [clip_file[clip] for clip in expected["clip"]]
    assert column(mistakes, "retrieved first (listen)", "audio") == [clip_file[clip] for clip in expected["top1"]]
    assert column(mistakes, "its clip") == expected["clip"].tolist()
    metrics = json.loads((out / "metrics.json").read_text())
    for direction in ("t2a", "a2t"):  # a median rank is a whole number: shown as one
        value, _ = metric_card(page, f"{direction}_median_rank")
        assert value == str(int(metrics[f"{direction}_median_rank"]))
    assert page.count("<script") == OUR_SCRIPTS


@pytest.mark.slow
def test_a_tagging_report_lists_the_worst_ranked_true_labels(tiny_model_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    copy = write_fsd50k_schema(tmp_path / "fsd50k")
    assert run_cli(monkeypatch, capsys, "dataset=fsd50k", f"dataset.hub_id={copy}", "model=tiny_random",
                   f"output_dir={out}", "report_mistakes=4", "report_mistakes_per_class=1")[0] == 0
    scores = pd.read_parquet(out / "scores.parquet")
    classes = json.loads((out / "metrics.json").read_text())["labels"]
    logits = scores[[f"logit:{name}" for name in classes]].to_numpy()
    y_true = np.array([[name in labels.split(",") for name in classes] for labels in FSD_SETS])
    expected = worst_ranked_labels(y_true, logits, per_class=1, total=4)
    page = (out / "report.html").read_text()
    mistakes = page_tables(page)["mistakes-table"]
    assert list(zip(column(mistakes, "item"), column(mistakes, "true label"), column(mistakes, "its rank"))) == [
        (scores["item_id"].iloc[clip], classes[label], str(rank))
        for clip, label, rank in expected[["clip", "label", "rank"]].itertuples(index=False)]
    assert column(mistakes, "clip", "audio") == [f"report_assets/clip-{clip:06d}.flac" for clip in expected["clip"]]
    assert len(expected) == 4 and 'data:image/png;base64,' in page  # the per-class AP bars


def test_compare_page_plays_the_changed_items_it_has_files_for(tmp_path):
    labels = ["cat", "dog"]
    run_a = write_run(tmp_path / "a", labels, [("1", "cat", "cat"), ("2", "dog", "dog"), ("hub-row-3", "dog", "dog")])
    run_b = write_run(tmp_path / "b", labels, [("1", "cat", "dog"), ("2", "dog", "cat"), ("hub-row-3", "dog", "cat")])
    sf.write(tmp_path / "one.wav", tone(300.0, 8000, 0.25), 8000)
    predictions = pd.read_csv(run_a / "predictions.csv", dtype=str)
    predictions.insert(1, "path", [str(tmp_path / "one.wav"), str(tmp_path / "gone.wav"), "hub-row-3"])
    predictions.to_csv(run_a / "predictions.csv", index=False)
    out = tmp_path / "comparison"
    assert report_main(["compare", str(run_a), str(run_b), "--out", str(out), "--resamples", "50"]) == 0
    page = (out / "compare.html").read_text()
    assert unique_ids(page) and "exact McNemar p = " in page and 'id="deltas-table"' in page
    assert "Per-class recall" in page
    [played] = audio_sources(page)
    assert sf.read(out / played)[1] == CLIP_RATE and list((out / "report_assets").iterdir()) == [out / played]
    changed = page_tables(page)["table-2"]
    assert column(changed, "item_id") == ["1", "2", "hub-row-3"]
    assert column(changed, "clip") == ["", f"clip: no audio file at {tmp_path / 'gone.wav'} (a Hub dataset's items "
                                           "have no file path)",
                                       "clip: no audio file at hub-row-3 (a Hub dataset's items have no file path)"]
    assert column(changed, "clip", "audio") == [played, None, None]
    assert report_main(["compare", str(run_a), str(run_b), "--out", str(tmp_path / "quiet"), "--clips", "0"]) == 0
    assert audio_sources((tmp_path / "quiet" / "compare.html").read_text()) == []
    assert not (tmp_path / "quiet" / "report_assets").exists()


CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")
BROWSER_CHECK = """
<script>
(async () => {
  const table = document.getElementById(%(table)s);
  const header = [...table.tHead.rows[0].cells].findIndex((cell) => cell.textContent.trim() === %(column)s);
  const column = () => [...table.tBodies[0].rows].map((row) => row.cells[header].textContent.trim());
  const sorted = {before: column()};
  table.tHead.rows[0].cells[header].click();
  sorted.ascending = column();
  table.tHead.rows[0].cells[header].click();
  sorted.descending = column();
  const audio = await Promise.all([...document.querySelectorAll("audio")].map((player) => new Promise((resolve) => {
    const done = (decoded) => resolve({src: player.getAttribute("src"), decoded, duration: player.duration});
    player.addEventListener("loadeddata", () => done(true), {once: true});
    player.addEventListener("error", () => done(false), {once: true});
    player.preload = "auto";
    player.load();
  })));
  const metrics = Object.fromEntries([...document.querySelectorAll("[data-metric]")].map(
    (card) => [card.dataset.metric, card.querySelector(".value").textContent.trim()]));
  const links = [...document.querySelectorAll("main a[href]")].map((link) => link.getAttribute("href"));
  const layout = {
    window: window.innerWidth, main: document.querySelector("main").getBoundingClientRect().width,
    linksOffScreen: [...document.querySelectorAll("main table a[href]")]
      .filter((link) => link.getBoundingClientRect().right > window.innerWidth).map((link) => link.getAttribute("href")),
    tablesScrolling: [...document.querySelectorAll(".scroll")].filter((box) => box.scrollWidth > box.clientWidth + 1)
      .map((box) => box.querySelector("table").id),
    images: [...document.querySelectorAll("figure img")].map(
      (image) => [image.naturalWidth, Math.round(image.getBoundingClientRect().width - 2)]),  // less its border
  };
  const found = document.createElement("pre");
  found.id = "browser-check";
  found.textContent = JSON.stringify({sorted, audio, metrics, links, layout});
  document.body.append(found);
})();
</script>
"""


def chromium(page: Path, profile: Path, *flags: str) -> str:
    """Open a page in headless Chromium (as root: no sandbox; no network, no GPU, a fresh profile)."""
    finished = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-background-networking", "--disable-component-update", "--no-first-run",
                               f"--user-data-dir={profile}", "--hide-scrollbars", *flags, page.as_uri()],
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished.stdout


def browser_check(page: Path, table: str, column: str, profile: Path, window: str = "1280,1600") -> dict:
    """What the page shows in the browser (`window`: its width and height) once its scripts ran: `column` of table
    `table` as laid out, then sorted by a click and by a second; each player's clip loaded and decoded (or not); the
    metric cards; the links; the layout (the window's and the page's width, table links beyond the window's right
    edge, tables that scroll sideways, each figure's own and shown width)."""
    checked = page.with_name("browser_check.html")
    checked.write_text(page.read_text().replace("</body>", BROWSER_CHECK % {"table": json.dumps(table),
                                                                           "column": json.dumps(column)}
                                                + "</body>"))
    try:
        dom = chromium(checked, profile, "--virtual-time-budget=20000", f"--window-size={window}", "--dump-dom")
    finally:
        checked.unlink()
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


def leading_number(text: str) -> float:
    return float(text.split()[0])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None,
                    reason="no Chromium: scripts/install.sh installs Debian's chromium-headless-shell")
def test_report_and_leaderboard_in_a_real_browser(classification_results, tmp_path):
    run_dir = classification_results / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = browser_check(run_dir / "report.html", "table-1", "recall", tmp_path / "profile")
    declared = {spec["name"]: f"{metrics[spec['name']]:.4f}" for spec in metrics["leaderboard_metrics"]}
    assert report["metrics"] == declared | {"chance_accuracy": f"{metrics['chance_accuracy']:.4f}"}
    recalls = pd.read_csv(run_dir / "per_class.csv")["recall"].map("{:.4f}".format).tolist()
    assert report["sorted"]["before"] == recalls
    assert report["sorted"]["ascending"] == sorted(recalls, key=float)
    assert report["sorted"]["descending"] == sorted(recalls, key=float, reverse=True)
    assert len(report["audio"]) == metrics["report"]["clips"] > 0
    for player in report["audio"]:
        assert player["decoded"] and (run_dir / player["src"]).is_file()
        assert player["duration"] == pytest.approx(len(sf.read(run_dir / player["src"])[0]) / CLIP_RATE, abs=0.05)
    assert all((run_dir / link).exists() for link in report["links"] if not link.startswith("http"))
    assert report["layout"]["tablesScrolling"] == []  # the mistakes' best classes, one a line, fit the page

    board = browser_check(classification_results / "leaderboard.html", "leaderboard-table", "accuracy [95% CI]",
                          tmp_path / "profile")
    cells = board["sorted"]["before"]
    assert board["sorted"]["ascending"] == sorted(cells, key=leading_number)
    assert board["sorted"]["descending"] == sorted(cells, key=leading_number, reverse=True)
    assert "run/report.html" in board["links"] and board["layout"]["linksOffScreen"] == []
    assert all((classification_results / link).is_file() for link in board["links"])

    for page, shot in ((run_dir / "report.html", tmp_path / "report.png"),
                       (classification_results / "leaderboard.html", tmp_path / "leaderboard.png")):
        chromium(page, tmp_path / "profile", "--window-size=1280,1600", f"--screenshot={shot}")
        height, width, _ = png_shape(shot)
        assert (height, width) == (1600, 1280)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None,
                    reason="no Chromium: scripts/install.sh installs Debian's chromium-headless-shell")
def test_a_wide_leaderboard_uses_the_window_and_draws_its_figures_at_their_own_size(tmp_path):
    """A suite's board: 12 datasets x 4 models. In a 2600 px window the board spans the window and every report link
    is on screen; in a narrow one the by-dataset figure scrolls rather than shrink its labels."""
    results = tmp_path / "results"
    for model in ("clap_htsat_unfused", "clap_htsat_fused", "larger_clap_general", "pe_audio_small_16khz"):
        for number in range(12):
            dataset = f"dataset_with_a_long_name_{number:02d}"
            identity = {"family": "clap", "model_name_or_path": model, "dataset": dataset, "template": "sound_of"}
            run_dir = results / dataset / model / "sound_of" / "20261201-101010-000001"
            run_dir.mkdir(parents=True)
            (run_dir / "report.html").write_text("<html></html>")
            (run_dir / "metrics.json").write_text(json.dumps({
                "dataset": dataset, "model": model, "template": "sound_of", "prompts": ["This is a sound of {}."],
                "accuracy": 0.5 + number / 50, "accuracy_ci95": [0.4, 0.7], "n_evaluated": 400,
                "started_at": "2026-12-01T10:10:10", "identity": identity, "status": "complete"}))
    assert report_main(["leaderboard", str(results)]) == 0
    wide = browser_check(results / "leaderboard.html", "leaderboard-table", "accuracy [95% CI]", tmp_path / "profile",
                         window="2600,1400")["layout"]
    assert wide["main"] >= wide["window"] - 20 and wide["linksOffScreen"] == []
    narrow = browser_check(results / "leaderboard.html", "leaderboard-table", "accuracy [95% CI]",
                           tmp_path / "profile")["layout"]
    assert len(narrow["images"]) == 2 and max(width for width, _ in narrow["images"]) > narrow["window"]
    assert all(shown == natural for natural, shown in narrow["images"])  # at their own size: labels as drawn
