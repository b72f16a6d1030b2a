"""Golden outputs of LAION's own CLAP code (laion_clap 1.1.7), which tests/test_laion_conformance.py compares
zsa-eval with.

laion_clap runs in a virtualenv of its own (laion-clap 1.1.7 installed without its dependencies, which pin numpy
below 2, beside the versions below, which work with numpy 2). In it, for each case (HTSAT-tiny, HTSAT-tiny with
fusion, HTSAT-base), this script builds `laion_clap.CLAP_Module`, replaces every learned tensor (batch-norm
statistics included) with a random one from scripts/conformance/laion_recipe.py, saves the model as a checkpoint in
laion_clap's training format (`module.`-prefixed state dict beside the epoch and optimizer state), loads that file
with laion_clap's own `load_ckpt`, and writes, per case, tests/golden/laion_clap/<case>.json (the weights' seed
and digest, the inputs' hashes, the embeddings) and <case>.layout.json.gz (the state dict's keys, shapes, dtypes:
what the suite rebuilds the weights from):
- `get_audio_embedding_from_filelist` of real recordings (/usr/share/sounds/freedesktop: 8, 22.05 and 48 kHz) and
  of synthesized WAV files (5 s at 44.1 kHz, exactly 10 s, 10 s and half a hop, 25 s), numpy's global RNG seeded
  before each (laion_clap draws its crops from it, as zsa-eval's featurizer does);
- `get_audio_embedding_from_data` of synthesized 48 kHz arrays (3 s, 25 s);
- for the fused case, the long clips again with torchvision's Resize not antialiasing (as torchvision did before
  0.17, when LAION measured its figures; 1.1.7 under torchvision 0.28 antialiases the shrunk global view);
- `get_text_embedding` of a few prompts (one over laion_clap's 77 tokens) and their token ids.

laion_clap fetches roberta-base (weights and tokenizer) from the Hub: here its text tower is built from
roberta-base's config at a smaller depth (laion_recipe.TEXT_TOWER) with random weights, and its tokenizer is a
byte-level BPE trained locally (zsa_eval.random_models.train_tokenizer), written to tests/golden/laion_clap/tokenizer
for both sides. torchvision's and torchaudio's compiled extensions on PyPI are built against another torch: laion_clap
uses neither's compiled ops, so the script leaves torchvision's operator registrations out and deletes torchaudio's
extension libraries in the virtualenv (torchaudio then takes its documented no-extension path).

Refresh the golden files (needs PyPI the first time: the virtualenv, ~1.5 GB, is built once; ~5 minutes on 2 cores):

    python scripts/conformance/laion_golden.py                       # every case
    python scripts/conformance/laion_golden.py --cases htsat_tiny    # one
    python -m pytest -q tests/test_laion_conformance.py              # then compare zsa-eval with them

--venv DIR (default ~/.cache/zsa-eval/conformance/laion-clap-1.1.7) holds the virtualenv; --work DIR (default
~/.cache/zsa-eval/conformance/laion) the synthesized clips and the random checkpoints (<case>.pt, ~170-450 MB each:
load one into zsa-eval with model=auto model.name_or_path=DIR/htsat_tiny.pt model.tokenizer=tests/golden/laion_clap/tokenizer).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from reference_venv import ensure_venv

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GOLDEN = REPO / "tests" / "golden" / "laion_clap"
CACHE = Path(os.environ.get("ZSA_EVAL_CACHE", Path.home() / ".cache" / "zsa-eval")) / "conformance"
REFERENCE = ["laion-clap==1.1.7", "torchvision==0.28.0", "torchaudio==2.11.0"]  # installed without dependencies
DEPENDENCIES = ["torch==2.13.0", "numpy==2.2.6", "transformers==4.57.1", "tokenizers==0.22.2", "librosa==0.11.0",
                "numba==0.68.1", "llvmlite==0.50.0", "soxr==1.1.0", "soundfile==0.14.0", "torchlibrosa==0.1.0",
                "scipy==1.17.1", "scikit-learn==1.9.1", "pandas==3.1.1", "h5py==3.16.0", "pillow==13.0.0",
                "braceexpand==0.1.7", "webdataset==1.0.2", "wget==3.2", "ftfy==6.3.1", "regex==2026.12.2",
                "tqdm==4.70.1", "packaging==26.4"]
VERSIONS = ["laion_clap", "torch", "torchvision", "torchaudio", "transformers", "tokenizers", "numpy", "librosa",
            "soxr", "soundfile", "torchlibrosa"]


# --- outside: zsa-eval's environment ----------------------------------------------------------------------------------


def write_tokenizer(folder: Path) -> None:
    """The locally trained RoBERTa-style tokenizer, as both a fast tokenizer and vocab.json + merges.txt (which
    transformers 4's slow RobertaTokenizer, laion_clap's, reads)."""
    from zsa_eval.random_models import train_tokenizer

    tokenizer = train_tokenizer()
    tokenizer.save_pretrained(folder)
    tokenizer.backend_tokenizer.model.save(str(folder))


def outside(arguments: argparse.Namespace) -> None:
    python = ensure_venv(arguments.venv, [DEPENDENCIES, ["--no-deps", *REFERENCE]])
    GOLDEN.mkdir(parents=True, exist_ok=True)
    write_tokenizer(GOLDEN / "tokenizer")
    subprocess.run([str(python), __file__, "--inside", "--work", str(arguments.work), "--cases", arguments.cases],
                   check=True, env=os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                                 "TOKENIZERS_PARALLELISM": "false"})


# --- inside: laion_clap's virtualenv ---------------------------------------------------------------------------------

def import_laion_clap():
    """laion_clap, with roberta-base's weights and tokenizer (which it fetches from the Hub) replaced by the
    golden text tower and the local tokenizer, and torchvision's detection-op registrations left out."""
    import types

    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    from transformers import BartTokenizer, BertTokenizer, RobertaConfig, RobertaModel, RobertaTokenizer

    sys.path.insert(0, str(HERE))
    from laion_recipe import TEXT_TOWER

    tokenizer = RobertaTokenizer.from_pretrained(str(GOLDEN / "tokenizer"))
    tower = RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=514, type_vocab_size=1,
                          layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2, **TEXT_TOWER)
    RobertaModel.from_pretrained = classmethod(lambda cls, name, *args, **kwargs: cls(tower))
    RobertaTokenizer.from_pretrained = classmethod(lambda cls, name, *args, **kwargs: tokenizer)
    for unused in (BertTokenizer, BartTokenizer):  # laion_clap's training data module loads these at import
        unused.from_pretrained = classmethod(lambda cls, name, *args, **kwargs: None)
    import laion_clap

    return laion_clap


def versions() -> dict:
    from importlib.metadata import version

    return {package: version(package.replace("_", "-")) for package in VERSIONS}


def golden_case(laion_clap, case: str, work: Path, clips: dict[str, Path]) -> None:
    import numpy as np
    import torch
    import torchvision
    import librosa
    import laion_recipe as recipe

    arguments = recipe.CASES[case]
    torch.manual_seed(0)
    model = laion_clap.CLAP_Module(device="cpu", **arguments)
    state = model.model.state_dict()
    layout = [{"key": key, "shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
              for key, value in state.items()]
    random = recipe.random_state(layout)
    randomized = {key: value if recipe.kept(key) else torch.from_numpy(random[key]) for key, value in state.items()}
    checkpoint = work / f"{case}.pt"
    torch.save({"epoch": 45, "name": f"zsa-eval conformance {case}",
                "state_dict": {key: torch.as_tensor(value)
                               for key, value in recipe.checkpoint_state(randomized).items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": np.float64(1e-4), "betas": (0.9, 0.99),
                                                              "eps": 1e-9, "weight_decay": 0.0, "params": [0]}]}},
               checkpoint)
    reference = laion_clap.CLAP_Module(device="cpu", **arguments).requires_grad_(False)
    reference.load_ckpt(str(checkpoint), verbose=False)  # laion_clap's own loader reads the file
    loaded = reference.model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in randomized.items()), "load_ckpt changed a tensor"

    def embed(name: str, function, argument) -> list[float]:
        np.random.seed(recipe.crop_seed(name))
        return function(argument)[0]

    files = []
    for name, path in clips.items():
        audio, _ = librosa.load(path, sr=48000)
        files.append({"name": name, "decoded_sha256": recipe.decoded_digest(path), "loaded_samples": len(audio),
                      "crop_seed": recipe.crop_seed(name),
                      "embedding": recipe.encode_array(embed(name, reference.get_audio_embedding_from_filelist,
                                                             [str(path)]))})
    data = [{"name": name, "samples": recipe.DATA_CLIPS[name], "crop_seed": recipe.crop_seed(name),
             "embedding": recipe.encode_array(embed(name, reference.get_audio_embedding_from_data,
                                                    [recipe.data_clip(name)]))} for name in recipe.DATA_CLIPS]
    unaliased = {}
    if arguments["enable_fusion"]:
        resize = torchvision.transforms.Resize
        torchvision.transforms.Resize = lambda size, **options: resize(size, antialias=False, **options)
        try:
            unaliased = {"long_25s_44k.wav": embed("long_25s_44k.wav", reference.get_audio_embedding_from_filelist,
                                                   [str(clips["long_25s_44k.wav"])]),
                         "long_25s_48k": embed("long_25s_48k", reference.get_audio_embedding_from_data,
                                               [recipe.data_clip("long_25s_48k")])}
        finally:
            torchvision.transforms.Resize = resize
    tokens = reference.tokenizer(recipe.PROMPTS)
    golden = {
        "about": "laion_clap's outputs on random weights: scripts/conformance/laion_golden.py (its docstring says how "
                 "to refresh); tests/test_laion_conformance.py compares zsa-eval with them",
        "case": case, "clap_module": arguments, "versions": versions(), "text_tower": recipe.TEXT_TOWER,
        "weights_seed": recipe.WEIGHTS_SEED, "weights_sha256": recipe.weights_digest(random),
        "layout": f"{case}.layout.json.gz", "logit_scale_a": reference.model.logit_scale_a.exp().item(),
        "files": files, "data": data,
        "fusion_without_antialias": {name: recipe.encode_array(value) for name, value in unaliased.items()},
        "prompts": recipe.PROMPTS,
        "token_ids": [ids[mask.bool()].tolist() for ids, mask in zip(tokens["input_ids"], tokens["attention_mask"])],
        "text_embeddings": recipe.encode_array(reference.get_text_embedding(recipe.PROMPTS)),
    }
    (GOLDEN / f"{case}.json").write_text(json.dumps(golden, indent=1) + "\n")
    with gzip.GzipFile(GOLDEN / f"{case}.layout.json.gz", "wb", mtime=0) as file:
        file.write(json.dumps(layout).encode())
    print(f"{case}: {checkpoint} and {GOLDEN / case}.json", flush=True)


def inside(arguments: argparse.Namespace) -> None:
    laion_clap = import_laion_clap()
    import laion_recipe as recipe

    arguments.work.mkdir(parents=True, exist_ok=True)
    synthesized = recipe.write_synthesized(arguments.work / "clips")
    clips = {name: Path(path) for name, path in recipe.SYSTEM_CLIPS.items()} | synthesized
    for case in arguments.cases.split(","):
        golden_case(laion_clap, case, arguments.work, clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=CACHE / "laion-clap-1.1.7")
    parser.add_argument("--work", type=Path, default=CACHE / "laion")
    parser.add_argument("--cases", default="htsat_tiny,htsat_tiny_fused,htsat_base")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    (inside if arguments.inside else outside)(arguments)


if __name__ == "__main__":
    main()
