import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from zsa_eval.errors import UserError
from zsa_eval.report import atomic_write, confusion_png, prepare_output_dir, write_json


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
    with pytest.raises(UserError, match="output_dir"):
        prepare_output_dir(blocker / "run")
