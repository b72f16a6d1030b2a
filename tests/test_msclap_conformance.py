"""MS-CLAP against Microsoft's own code: on the golden files' random weights (rebuilt here from their seed) and
inputs, zsa-eval's MS-CLAP family gives msclap 1.3.4's outputs within 1e-4: token ids, raw audio embeddings of short
clips (repeated to the window) and long ones (the same seeded crop), raw text embeddings, similarities. The golden
files (tests/golden/msclap/) are written by scripts/conformance/msclap_golden.py, whose docstring says how to refresh
them; a full-size case (msclap's own widths) takes tens of seconds, so it is marked slow."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts" / "conformance"))

import msclap_recipe as recipe  # noqa: E402
from zsa_eval.random_models import build_random_msclap  # noqa: E402

GOLDEN = REPO / "tests" / "golden" / "msclap"


@pytest.fixture(scope="module")
def waveforms() -> dict[str, np.ndarray]:
    return recipe.clips()


def differences(ours: np.ndarray, entry: dict, rows: list[int]) -> float:
    """The largest difference on `rows` between zsa-eval's raw embeddings and the golden file's (its kept columns
    and the norms)."""
    values, norms = recipe.kept_values(entry)
    return max(float(np.abs(ours[rows, :values.shape[1]] - values[rows]).max()),
               float(np.abs(np.linalg.norm(ours[rows], axis=1) - norms[rows]).max()))


@pytest.mark.parametrize("case", [pytest.param(case, marks=[pytest.mark.slow] if case.endswith("full") else [])
                                  for case in recipe.CASES])
def test_zsa_eval_gives_msclaps_outputs(case, waveforms, tmp_path):
    golden = json.loads((GOLDEN / f"{case}.json").read_text())
    assert [clip["name"] for clip in golden["clips"]] == list(waveforms) and golden["prompts"] == recipe.PROMPTS
    assert [clip["samples"] for clip in golden["clips"]] == [len(waveform) for waveform in waveforms.values()]
    changed = [clip["name"] for clip, waveform in zip(golden["clips"], waveforms.values())
               if clip["sha256"] != recipe.clip_digest(waveform)]
    note = f" (clips decoded or synthesized otherwise than for the golden file: {changed})" if changed else ""
    long_rows = [row for row, clip in enumerate(golden["clips"]) if clip["crop_start"] is not None]
    short_rows = [row for row in range(len(waveforms)) if row not in long_rows]
    assert long_rows and short_rows
    for front_end, run in golden["front_ends"].items():
        model_dir = build_random_msclap(golden["version"], golden["size"], tmp_path / front_end,
                                        golden["weights_seed"], front_end)
        config = json.loads((model_dir / "config.json").read_text())
        state = torch.load(model_dir / config["weights_file"], weights_only=True)["model"]
        assert recipe.weights_digest(state) == run["weights_sha256"], "the twin's weights are not the golden file's"
        assert run["missing_keys"] == (sorted(name for name in config_front_end(config)) if front_end == "absent"
                                       else []) and run["unexpected_keys"] == []
        ours = recipe.zsa_eval_outputs(model_dir, waveforms, golden["prompts"])
        assert recipe.same_tokens(ours["token_ids"], golden["token_ids"])
        measured = {"short clips": differences(ours["audio"], run["audio_embeddings"], short_rows),
                    "long clips": differences(ours["audio"], run["audio_embeddings"], long_rows),
                    "texts": differences(ours["text"], golden["text_embeddings"], list(range(len(recipe.PROMPTS)))),
                    "similarities": float(np.abs(ours["similarity"] - recipe.decode_array(
                        run["similarity"], len(recipe.PROMPTS))).max())}
        assert max(measured.values()) <= recipe.MAX_ABS, f"{case}, {front_end} front end: {measured}{note}"


def config_front_end(config: dict) -> list[str]:
    """The names of the log-mel kernels in a twin's weights (a 2023 model's one level down)."""
    from zsa_eval.families.msclap_audio import FRONT_END

    prefix = "audio_encoder.base." + ("htsat." if config["audio_encoder"] == "HTSAT" else "")
    return [prefix + name for name in FRONT_END]


def test_golden_files_cover_every_case_and_say_how_they_were_made():
    for case in recipe.CASES:
        golden = json.loads((GOLDEN / f"{case}.json").read_text())
        assert golden["versions"]["msclap"] == "1.3.4" and golden["weights_seed"] == recipe.WEIGHTS_SEED
        assert set(golden["front_ends"]) == set(recipe.FRONT_ENDS[golden["size"]])
        assert "msclap_golden.py" in golden["about"]
        assert (GOLDEN / f"{case}.json").stat().st_size < 32_000  # small: the full cases keep 64 columns
