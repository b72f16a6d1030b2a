import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from zsa_eval.errors import UserError
from zsa_eval.store import (MANIFEST_FILE, PROGRESS_FILE, ProgressLog, atomic_write, open_run_dir, run_lock,
                             write_json, write_run_file)
from zsa_eval.plots import confusion_png


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "metrics.json"
    write_json({"accuracy": 0.5}, target)
    write_json({"accuracy": 0.75}, target)
    assert json.loads(target.read_text()) == {"accuracy": 0.75}
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    atomic_write(target, "old")
    monkeypatch.setattr("os.replace", lambda *args: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.slow
def test_confusion_png_is_a_real_image_sized_for_50_classes(tmp_path):
    names = [f"class_{index:02d}" for index in range(50)]
    counts = np.diag(np.full(50, 8)) + np.eye(50, k=1, dtype=int)
    path = tmp_path / "cm.png"
    path.write_bytes(confusion_png(pd.DataFrame(counts, index=names, columns=names)))
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 1500 and image.shape[1] >= 1500
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write to output_dir"):
        open_run_dir(blocker / "run", {}, resume=False, overwrite=False)


def test_progress_log_keeps_whole_lines_only(tmp_path):
    log = ProgressLog(tmp_path)
    assert log.read() == {}
    log.append([{"index": 0, "item_id": "a", "probabilities": [0.25, 0.75]}])
    log.append([{"index": 2, "item_id": "c", "reason": "missing file", "detail": "gone"}])
    with open(log.path, "a") as file:
        file.write('{"index": 1, "item_id": "b", "probab')  # a kill in the middle of a write
    records = log.read()
    assert sorted(records) == [0, 2] and records[0]["probabilities"] == [0.25, 0.75]
    log.compact(records)
    ProgressLog(tmp_path, "-rank1").append([{"index": 1, "item_id": "b", "probabilities": [0.5, 0.5]}])
    assert sorted(log.read()) == [0, 1, 2]  # parts of other processes are merged
    log.compact(log.read())
    assert sorted(path.name for path in tmp_path.iterdir()) == [MANIFEST_FILE, PROGRESS_FILE]


def test_run_dir_refuses_other_runs_and_foreign_files(tmp_path):
    identity = {"model": {"name": "tiny"}, "template": {"name": "plain"}}
    open_run_dir(tmp_path / "run", identity, resume=False, overwrite=False)
    write_run_file(tmp_path / "run", "metrics.json", "{}")
    write_run_file(tmp_path / "run", "report_assets/clip-000001.flac", b"fLaC")
    with pytest.raises(UserError, match="already holds this run: resume=true"):
        open_run_dir(tmp_path / "run", identity, resume=False, overwrite=False)
    open_run_dir(tmp_path / "run", identity, resume=True, overwrite=False)
    other = {"model": {"name": "tiny"}, "template": {"name": "ensemble"}}
    with pytest.raises(UserError, match=r"another config \(differs in: template.name\)"):
        open_run_dir(tmp_path / "run", other, resume=True, overwrite=False)
    open_run_dir(tmp_path / "run", other, resume=False, overwrite=True)  # removes exactly what the run wrote
    assert sorted(path.relative_to(tmp_path / "run").as_posix() for path in (tmp_path / "run").rglob("*")) == [
        ".zsa-eval-files", "run.json"]
    assert json.loads((tmp_path / "run" / "run.json").read_text()) == other


@pytest.mark.parametrize("overwrite", [False, True])
def test_overwrite_never_removes_a_file_zsa_eval_did_not_write(tmp_path, overwrite):
    """A user's folder holding what looks like results (metrics.json, report_assets/) is refused, overwrite or not,
    and left as it was; so is a run directory where the user put a file of their own."""
    mine = tmp_path / "mine"
    for name in ("metrics.json", "report.html", "embeddings/notes.txt", "report_assets/clip-000001.flac"):
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_text(f"the user's {name}")
    before = {path: path.read_bytes() for path in mine.rglob("*") if path.is_file()}
    with pytest.raises(UserError, match=r"output_dir '.*mine' holds no zsa-eval run \(4 such files, e.g. "
                                        r"'embeddings/notes.txt'\): choose an empty output_dir"):
        open_run_dir(mine, {"seed": 0}, resume=False, overwrite=overwrite)
    assert {path: path.read_bytes() for path in mine.rglob("*") if path.is_file()} == before
    run = tmp_path / "run"
    open_run_dir(run, {"seed": 0}, resume=False, overwrite=False)
    write_run_file(run, "metrics.json", "{}")
    (run / "embeddings").mkdir()
    (run / "embeddings" / "mine.npy").write_text("keep me")
    with pytest.raises(UserError, match=r"holds files zsa-eval did not write \(1 such file, e.g. "
                                        r"'embeddings/mine.npy'\)"):
        open_run_dir(run, {"seed": 1}, resume=False, overwrite=True)
    assert (run / "embeddings" / "mine.npy").read_text() == "keep me" and (run / "metrics.json").exists()


def test_a_results_directory_or_a_folder_inside_a_run_is_no_run_directory(tmp_path):
    open_run_dir(tmp_path / "results" / "run", {"seed": 0}, resume=False, overwrite=False)
    (tmp_path / "results" / "leaderboard.md").write_text("| a board |")
    with pytest.raises(UserError, match=r"holds zsa-eval runs in its folders \(a results directory\): a run needs a "
                                        r"folder of its own, e.g. output_dir=.*results/my_run"):
        open_run_dir(tmp_path / "results", {"seed": 0}, resume=False, overwrite=True)
    with pytest.raises(UserError, match=r"lies inside the run directory '.*results/run', which holds that run's files "
                                        r"only: choose an output_dir outside it"):
        open_run_dir(tmp_path / "results" / "run" / "nested", {"seed": 0}, resume=False, overwrite=False)
    assert not (tmp_path / "results" / "run" / "nested").exists()


def test_resume_needs_a_run_and_excludes_overwrite(tmp_path):
    with pytest.raises(UserError, match=r"resume=true, but output_dir '.*nowhere' holds no run to resume: check "
                                        r"output_dir=\.\.\., or drop resume=true"):
        open_run_dir(tmp_path / "nowhere", {"seed": 0}, resume=True, overwrite=False)
    with pytest.raises(UserError, match="resume=true continues the run in output_dir and overwrite=true replaces it: "
                                        "choose one"):
        open_run_dir(tmp_path / "run", {"seed": 0}, resume=True, overwrite=True)


def test_a_run_directory_has_one_writer_at_a_time(tmp_path):
    """The lock names its holder's process id; it is released when the holder leaves (or dies: the kernel's)."""
    import os

    with run_lock(tmp_path / "run"):
        with pytest.raises(UserError, match=rf"output_dir '.*run' is being written by another zsa-eval run \(process "
                                            rf"{os.getpid()}\): wait for it to finish"):
            with run_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"):  # free again
        pass


def test_a_long_heatmap_title_stays_inside_the_figure(monkeypatch):
    from zsa_eval import plots

    drawn = []
    monkeypatch.setattr(plots, "png_bytes", lambda figure: drawn.append(figure) or b"")
    title = "accuracy on audiofolder (/data/a/very/long/path/to/somebody's/recordings/of/their/garden/birds/2026)"
    plots.accuracy_heatmap_png({title: pd.DataFrame({"sound_of #1234abcd": [0.5]}, index=["clap"])})
    figure = drawn[0]
    figure.canvas.draw()
    panel_title = figure.axes[0].title
    assert panel_title.get_text().replace("\n", "") == title and "\n" in panel_title.get_text()
    inside = figure.bbox
    extent = panel_title.get_window_extent()
    assert inside.x0 <= extent.x0 and extent.x1 <= inside.x1


def test_the_recall_chart_keeps_its_legend_below_the_bars(monkeypatch):
    """The two runs' names (long: model, template, run directory) are a legend under the axes, never over a bar."""
    from zsa_eval import plots

    drawn = []
    monkeypatch.setattr(plots, "png_bytes", lambda figure: drawn.append(figure) or b"")
    per_class = pd.DataFrame({"label": ["cat", "dog", "rain"], "recall_a": [1.0, 1.0, 1.0],
                              "recall_b": [1.0, 0.5, 1.0]})
    plots.recall_bars_png(per_class, "A: clap | sound_of #1234abcd (20261201-101010-000001)",
                          "B: clap | linear_probe (20261201-101011-000002)")
    figure = drawn[0]
    figure.canvas.draw()
    [axes] = figure.axes
    [legend] = figure.legends
    assert axes.get_legend() is None
    assert legend.get_window_extent().y1 <= axes.get_window_extent().y0  # below the axes
    assert figure.bbox.x0 <= legend.get_window_extent().x0 and legend.get_window_extent().x1 <= figure.bbox.x1


def test_reproducibility_out_writes_the_page_and_prints_none_of_it(tmp_path, capsys):
    from zsa_eval.report.__main__ import main as report_main

    (tmp_path / "results").mkdir()
    assert report_main(["reproducibility", str(tmp_path / "results"), "--out", str(tmp_path / "page.md")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == f"zsa-eval: reproducibility page written to {tmp_path / 'page.md'}\n"
    assert (tmp_path / "page.md").read_text().startswith("#")
    assert report_main(["reproducibility", str(tmp_path / "results")]) == 2  # no run there, no --out: refused
    assert "holds no zsa-eval run" in capsys.readouterr().err and not (tmp_path / "results" / "reproducibility.md").exists()
    (tmp_path / "results" / "run").mkdir()
    (tmp_path / "results" / "run" / "metrics.json").write_text("{}")
    assert report_main(["reproducibility", str(tmp_path / "results")]) == 0  # no --out: printed too
    assert capsys.readouterr().out == (tmp_path / "results" / "reproducibility.md").read_text()
    (tmp_path / "results" / "run" / "run.json").write_text("{}")
    for command in ("reproducibility", "leaderboard"):  # a run's own directory holds its run's files only
        assert report_main([command, str(tmp_path / "results" / "run")]) == 2
        assert "is a run's own directory" in capsys.readouterr().err
    assert sorted(path.name for path in (tmp_path / "results" / "run").iterdir()) == ["metrics.json", "run.json"]
