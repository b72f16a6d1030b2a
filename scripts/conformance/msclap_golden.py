"""Golden outputs of Microsoft's own MS-CLAP code (msclap 1.3.4), which tests/test_msclap_conformance.py compares
zsa-eval's MS-CLAP family with.

msclap runs in a virtualenv of its own, at its own pins (transformers < 5, numpy < 2: the versions below). For each
case (2022 and 2023, each `tiny` and `full`: zsa_eval.random_models' MS-CLAP twins at small widths and at msclap's
own sizes), this script writes the twin's random weights (seed msclap_recipe.WEIGHTS_SEED: every tensor drawn,
batch-norm statistics set from a forward pass and perturbed) as msclap's .pth file, then, in msclap's virtualenv,
builds msclap's CLAP with msclap's own `load_clap` (its modules; a tiny case narrows CNN14's blocks or HTSAT's
widths with msclap's own classes), checks that the file holds exactly the weights msclap's model has (none missing,
none left over), and runs msclap's `get_audio_embeddings` on the recipe's clips (Python's random seeded before each:
msclap draws its crops from it), its `get_text_embeddings` on the prompts and its `compute_similarity`. It writes
tests/golden/msclap/<case>.json: the weights' seed and digest, the clips' digests and crop seeds, the token ids, the
raw embeddings (a full case: their first 64 columns and norms) and the similarities, with msclap's virtualenv
versions; then it prints how far zsa-eval is from them.

msclap fetches bert-base-uncased or gpt2 (weights and tokenizer) from the Hub: here its text model is built from
the twin's text config (its weights come from the .pth) and its tokenizer is the twin's, trained locally
(zsa_eval.random_models.msclap.train_msclap_tokenizer), in a folder whose name holds "bert" or "gpt2" (msclap picks its
text handling by that name). PyPI's torchaudio is built against a CUDA torch: msclap uses only torchaudio.load
(torchcodec) and transforms.Resample (plain torch), so the script deletes torchaudio's extension libraries in the
virtualenv (torchaudio then takes its documented no-extension path).

Refresh the golden files (needs PyPI the first time: the virtualenv, ~1 GB, is built once; the tiny cases take about
a minute, the full ones a few more, on 2 cores):

    python scripts/conformance/msclap_golden.py                         # every case
    python scripts/conformance/msclap_golden.py --cases 2023_tiny       # one
    python -m pytest -q tests/test_msclap_conformance.py                # then compare zsa-eval with them

--venv DIR (default ~/.cache/zsa-eval/conformance/msclap-1.3.4) holds the virtualenv; --work DIR (default
~/.cache/zsa-eval/conformance/msclap) the clips and the twins (load one into zsa-eval with
model=auto model.name_or_path=DIR/2023_tiny/perturbed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from reference_venv import ensure_venv

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GOLDEN = REPO / "tests" / "golden" / "msclap"
CACHE = Path(os.environ.get("ZSA_EVAL_CACHE", Path.home() / ".cache" / "zsa-eval")) / "conformance"
REFERENCE = ["msclap==1.3.4", "torch==2.13.0", "torchaudio==2.11.1", "torchcodec==0.13.0", "transformers==4.57.6",
             "tokenizers==0.22.2", "huggingface_hub==0.36.2", "numpy==1.26.4", "librosa==0.10.2.post1",
             "torchlibrosa==0.1.0", "numba==0.68.1", "llvmlite==0.50.0", "scipy==1.17.1", "scikit-learn==1.9.1",
             "pandas==2.3.3", "PyYAML==6.0.4", "soundfile==0.14.0", "tqdm==4.70.1"]
VERSIONS = ["msclap", "torch", "torchaudio", "torchcodec", "transformers", "tokenizers", "numpy", "librosa",
            "torchlibrosa"]


# --- outside: zsa-eval's environment ----------------------------------------------------------------------------------


def text_model_folder(model_dir: Path, folder: Path) -> Path:
    """What msclap's text_model names: the twin's tokenizer and its text model's config, in a folder whose name
    holds the model's kind (msclap picks its text handling by that name)."""
    config = json.loads((model_dir / "config.json").read_text())
    text_dir = folder / f"{config['text_model']}_text_model"
    shutil.rmtree(text_dir, ignore_errors=True)
    shutil.copytree(model_dir / "tokenizer", text_dir)
    (text_dir / "config.json").write_text(json.dumps(config["text_config"], indent=1) + "\n")
    return text_dir


def reference_run(python: Path, case: str, front_end: str, work: Path, clip_paths: dict[str, Path]) -> dict:
    """msclap's outputs on the twin of `case` with its log-mel kernels `front_end`."""
    import msclap_recipe as recipe
    from zsa_eval.random_models import build_random_msclap

    version, size = case.split("_")
    folder = work / case / front_end
    shutil.rmtree(folder, ignore_errors=True)
    model_dir = build_random_msclap(version, size, folder / "model", recipe.WEIGHTS_SEED, front_end)
    config = json.loads((model_dir / "config.json").read_text())
    narrow = None if size == "full" else {key: config[key] for key in (
        "cnn14_channels", "htsat_embed_dim", "htsat_depths", "htsat_num_heads")}
    request = {"version": version, "model_fp": str(model_dir / config["weights_file"]),
               "text_model": str(text_model_folder(model_dir, folder)), "narrow": narrow,
               "yml": {"d_proj": config["d_proj"], "out_emb": config["out_emb"],
                       "transformer_embed_dim": config["text_config"].get(
                           "hidden_size", config["text_config"].get("n_embd", 768))},
               "clips": [{"name": name, "path": str(path), "seed": recipe.crop_seed(name)}
                         for name, path in clip_paths.items()],
               "prompts": recipe.PROMPTS, "front_end": front_end,
               "measured": {"resampled_48k": str(recipe.SYSTEM_CLIPS["front_center_1.4s"][0]),
                            "stereo_48k": str(recipe.SYSTEM_CLIPS["alarm_clock_6.1s"][0]),
                            "stereo_downmixed_48k": str(work / "clips" / "alarm_clock_mono_48k.wav")}}
    (folder / "request.json").write_text(json.dumps(request, indent=1))
    subprocess.run([str(python), __file__, "--inside", str(folder / "request.json"), str(folder / "reference.json")],
                   check=True, env=os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                                 "TOKENIZERS_PARALLELISM": "false"})
    import torch

    state = torch.load(request["model_fp"], weights_only=True)["model"]
    return {"model_dir": model_dir, "weights_sha256": recipe.weights_digest(state),
            **json.loads((folder / "reference.json").read_text())}


def golden_case(python: Path, case: str, work: Path, waveforms: dict, clip_paths: dict[str, Path]) -> None:
    import numpy as np

    import msclap_recipe as recipe

    version, size = case.split("_")
    runs = {front_end: reference_run(python, case, front_end, work, clip_paths)
            for front_end in recipe.FRONT_ENDS[size]}
    first = next(iter(runs.values()))
    assert all(run["text"] == first["text"] and run["token_ids"] == first["token_ids"] for run in runs.values()), \
        "the front end changed a text embedding: the twins' text weights must depend on the seed alone"
    samples = {"2022": 5 * recipe.RATE, "2023": 7 * recipe.RATE}[version]
    golden = {
        "about": "msclap 1.3.4's outputs on random weights: scripts/conformance/msclap_golden.py (its docstring says "
                 "how to refresh); tests/test_msclap_conformance.py compares zsa-eval with them",
        "case": case, "version": version, "size": size, "versions": first["versions"],
        "weights_seed": recipe.WEIGHTS_SEED,
        "clips": [{"name": name, "samples": len(waveform), "sha256": recipe.clip_digest(waveform),
                   "crop_seed": recipe.crop_seed(name),
                   "crop_start": first["crop_starts"][name]} for name, waveform in waveforms.items()],
        "clip_samples": samples,
        "prompts": recipe.PROMPTS, "token_ids": first["token_ids"],
        "text_embeddings": recipe.kept(np.array(first["text"], dtype=np.float32), size),
        "front_ends": {front_end: {
            "weights_sha256": run["weights_sha256"], "missing_keys": run["missing_keys"],
            "unexpected_keys": run["unexpected_keys"],
            "audio_embeddings": recipe.kept(np.array(run["audio"], dtype=np.float32), size),
            "similarity": recipe.encode_array(np.array(run["similarity"], dtype=np.float32))}
            for front_end, run in runs.items()},
        "measured": first["measured"],
    }
    GOLDEN.mkdir(parents=True, exist_ok=True)
    (GOLDEN / f"{case}.json").write_text(json.dumps(golden, indent=1) + "\n")
    for front_end, run in runs.items():
        ours = recipe.zsa_eval_outputs(run["model_dir"], waveforms, recipe.PROMPTS)
        differences = {kind: float(np.abs(ours[kind] - np.array(run[kind])).max())
                       for kind in ("audio", "text", "similarity")}
        long_clips = [index for index, waveform in enumerate(waveforms.values()) if len(waveform) > samples]
        short_clips = [index for index in range(len(waveforms)) if index not in long_clips]
        by_length = {f"audio_{kind}": float(np.abs(ours["audio"][rows] - np.array(run["audio"])[rows]).max())
                     for kind, rows in (("short", short_clips), ("long", long_clips))}
        print(f"{case} ({front_end} front end): max abs zsa-eval - msclap "
              + ", ".join(f"{kind} {value:.2e}" for kind, value in (differences | by_length).items())
              + f"; token ids {'equal' if recipe.same_tokens(ours['token_ids'], run['token_ids']) else 'DIFFER'}",
              flush=True)
    print(f"{case}: {GOLDEN / case}.json", flush=True)


def outside(arguments: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))
    import soundfile as sf

    import msclap_recipe as recipe

    python = ensure_venv(arguments.venv, [REFERENCE])
    clip_folder = arguments.work / "clips"
    clip_folder.mkdir(parents=True, exist_ok=True)
    waveforms = recipe.clips()
    clip_paths = {}
    for name, waveform in waveforms.items():
        clip_paths[name] = clip_folder / f"{name}.wav"
        sf.write(clip_paths[name], waveform, recipe.RATE, subtype="FLOAT")
    stereo, rate = sf.read(recipe.SYSTEM_CLIPS["alarm_clock_6.1s"][0], dtype="float32", always_2d=True)
    sf.write(clip_folder / "alarm_clock_mono_48k.wav", stereo.mean(axis=1), rate, subtype="FLOAT")
    for case in arguments.cases.split(","):
        golden_case(python, case, arguments.work, waveforms, clip_paths)


# --- inside: msclap's virtualenv ------------------------------------------------------------------------------------

def narrowed_encoders(narrow: dict):
    """msclap's get_audio_encoder, its encoders narrowed with msclap's own classes: CNN14's six ConvBlocks and fc
    layers at the twin's widths, HTSAT's transformer at the twin's width, depths and heads."""
    from torch import nn

    import msclap.models.clap as clap_module
    from msclap.models import config as htsat_config
    from msclap.models.audio import ConvBlock
    from msclap.models.htsat import HTSAT_Swin_Transformer

    original = clap_module.get_audio_encoder

    def get_audio_encoder(name: str):
        build = original(name)

        def narrowed(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num, out_emb):
            encoder = build(sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num, out_emb)
            if name == "Cnn14":
                widths = [1, *narrow["cnn14_channels"]]
                for block in range(1, 7):
                    setattr(encoder, f"conv_block{block}", ConvBlock(widths[block - 1], widths[block]))
                encoder.fc1 = nn.Linear(widths[-1], out_emb)
                encoder.fc_audioset = nn.Linear(out_emb, classes_num)
            else:
                encoder.htsat = HTSAT_Swin_Transformer(embed_dim=narrow["htsat_embed_dim"],
                                                       depths=narrow["htsat_depths"],
                                                       num_heads=narrow["htsat_num_heads"], config=htsat_config)
            return encoder
        return narrowed
    return get_audio_encoder


def reference_wrapper(request: dict):
    """msclap's CLAPWrapper as its __init__ builds it, with the request's weights file and a config of msclap's own
    with the text model (and a tiny case's widths) replaced; its text model built from the folder's config."""
    import re
    from pathlib import Path as PackagePath

    import yaml
    from transformers import AutoConfig, AutoModel

    import msclap
    import msclap.models.clap as clap_module
    from msclap import CLAP as CLAPWrapper

    class TextModelFromConfig:
        @staticmethod
        def from_pretrained(name: str):
            return AutoModel.from_config(AutoConfig.from_pretrained(name))

    clap_module.AutoModel = TextModelFromConfig
    if request["narrow"]:
        clap_module.get_audio_encoder = narrowed_encoders(request["narrow"])
    settings = yaml.safe_load((PackagePath(msclap.__file__).parent / "configs"
                               / f"config_{request['version']}.yml").read_text())
    settings["text_model"] = request["text_model"]
    if request["narrow"]:
        settings.update(request["yml"])
    wrapper = CLAPWrapper.__new__(CLAPWrapper)  # what __init__ sets, without its Hub download
    wrapper.supported_versions = CLAPWrapper.model_name.keys()
    wrapper.np_str_obj_array_pattern = re.compile(r"[SaUO]")
    wrapper.default_collate_err_msg_format = ("default_collate: batch must contain tensors, numpy arrays, numbers, "
                                              "dicts or lists; found {}")
    wrapper.file_path = msclap.CLAPWrapper.__file__
    wrapper.config_as_str = yaml.safe_dump(settings)
    wrapper.model_fp = request["model_fp"]
    wrapper.use_cuda = False
    wrapper.clap, wrapper.tokenizer, wrapper.args = wrapper.load_clap()
    return wrapper


def inside(request_path: Path, out_path: Path) -> None:
    import random
    from importlib.metadata import version

    import numpy as np
    import torch
    import torchaudio

    request = json.loads(request_path.read_text())
    wrapper = reference_wrapper(request)
    stored = torch.load(request["model_fp"], map_location="cpu", weights_only=True)["model"]
    own = wrapper.clap.state_dict()
    missing, unexpected = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    assert all(torch.equal(own[name], stored[name]) for name in own if name in stored), "a weight did not load"

    def embed(path: str, seed: int) -> np.ndarray:
        random.seed(seed)  # msclap crops with random.randrange
        return wrapper.get_audio_embeddings([path], resample=True)[0].numpy()

    samples = wrapper.args.duration * wrapper.args.sampling_rate
    crop_starts = {}
    for clip in request["clips"]:
        length = torchaudio.load(clip["path"])[0].shape[1]
        crop_starts[clip["name"]] = random.Random(clip["seed"]).randrange(length - samples) \
            if length > samples else None
    audio = np.stack([embed(clip["path"], clip["seed"]) for clip in request["clips"]])
    # one prompt at a time: msclap pads each text to text_len but never cuts one, so a batch holding a longer
    # text fails (its collate stacks sequences of unequal length)
    text = torch.cat([wrapper.get_text_embeddings([prompt]) for prompt in request["prompts"]])
    with torch.no_grad():
        similarity = wrapper.compute_similarity(torch.from_numpy(audio), text)
    measured = request["measured"]
    resampled = embed(measured["resampled_48k"], 0)  # msclap's own torchaudio resampling, 48 -> 44.1 kHz
    ours = audio[[clip["name"] for clip in request["clips"]].index("front_center_1.4s")]
    stereo, downmixed = embed(measured["stereo_48k"], 1), embed(measured["stereo_downmixed_48k"], 1)

    def compared(first: np.ndarray, second: np.ndarray) -> dict:
        cosine = float(first @ second / np.linalg.norm(first) / np.linalg.norm(second))
        return {"max_abs": float(np.abs(first - second).max()), "cosine": cosine}

    out = {"versions": {package: version(package) for package in VERSIONS},
           "missing_keys": missing, "unexpected_keys": unexpected, "crop_starts": crop_starts,
           "audio": audio.tolist(), "text": text.numpy().tolist(), "similarity": similarity.numpy().tolist(),
           "token_ids": [wrapper.preprocess_text([prompt])["input_ids"][0].tolist() for prompt in request["prompts"]],
           "measured": {
               "resampling": {"clip": "front_center_1.4s", "what": "msclap resampling the 48 kHz file itself "
                              "(torchaudio) against the soxr-resampled clip (zsa-eval's engine)",
                              **compared(resampled, ours)},
               "stereo": {"clip": str(measured["stereo_48k"]), "what": "msclap reading the stereo file (its channels "
                          "one after the other) against the same file averaged to mono",
                          **compared(stereo, downmixed)}}}
    out_path.write_text(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=CACHE / "msclap-1.3.4")
    parser.add_argument("--work", type=Path, default=CACHE / "msclap")
    parser.add_argument("--cases", default=",".join(("2022_tiny", "2023_tiny", "2022_full", "2023_full")))
    parser.add_argument("--inside", nargs=2, type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.inside:
        inside(*arguments.inside)
    else:
        outside(arguments)


if __name__ == "__main__":
    main()
