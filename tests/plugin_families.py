"""Model families that break the family contract one way each (tests/test_plugins.py), built on the example
plugin's toy families (examples/plugin_family), which tests import from the checkout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "plugin_family"))

from toy_family import ToyClapFamily  # noqa: E402
from zsa_eval.api import EmbeddingFamily  # noqa: E402


class NoTexts(EmbeddingFamily):
    """Implements neither embed_texts nor anything else."""

    name = "no_texts"


class NotAFamily:
    name = "not_a_family"


class LoadsNothing(ToyClapFamily):
    name = "loads_nothing"

    @classmethod
    def load(cls, spec):
        return None


class SkipsInit(ToyClapFamily):
    name = "skips_init"

    def __init__(self, model, device, dtype, window_seconds=2.0, fingerprint=None):
        self.model, self.device, self.dtype = model, device, dtype


class RaisesOnImportOfWeights(ToyClapFamily):
    name = "raises_on_load"

    @classmethod
    def load(cls, spec):
        raise KeyError("weights")


class WrongRank(ToyClapFamily):
    name = "wrong_rank"

    def embed_audio(self, inputs):
        return [embedding[None] for embedding in super().embed_audio(inputs)]


class Float64(ToyClapFamily):
    name = "float64"

    def embed_audio(self, inputs):
        return [embedding.double() for embedding in super().embed_audio(inputs)]


class NotFinite(ToyClapFamily):
    name = "not_finite"

    def embed_audio(self, inputs):
        return [embedding / 0 for embedding in super().embed_audio(inputs)]


class OtherTextDimension(ToyClapFamily):
    name = "other_text_dimension"

    def embed_texts(self, texts):
        return super().embed_texts(texts)[:, :16].contiguous()


class EmptyBatch(ToyClapFamily):
    name = "empty_batch"

    def embed_audio(self, inputs):
        return []


class TooFewTexts(ToyClapFamily):
    name = "too_few_texts"

    def embed_texts(self, texts):
        return super().embed_texts(texts)[1:]


class ListOfArrays(ToyClapFamily):
    name = "list_of_arrays"

    def embed_audio(self, inputs):
        return [embedding.numpy() for embedding in super().embed_audio(inputs)]


class RefusesSomeClips(ToyClapFamily):
    """Its preparer cannot take the clips whose crop seed is even (about half of them)."""

    name = "refuses_some_clips"

    def preparer(self, device):
        prepare = super().preparer(device)

        def picky(waveform, seed):
            if seed % 2 == 0:
                raise ValueError(f"cannot take seed {seed}")
            return prepare(waveform, seed)
        return picky


class FailsAfterABatch(ToyClapFamily):
    """embed_audio raises from its second call on while ZSA_EVAL_TEST_FAIL is set (a model that breaks mid-run)."""

    name = "toy_clap"  # the same identity as ToyClapFamily: a run it broke resumes with the fixed model
    calls = 0

    def embed_audio(self, inputs):
        type(self).calls += 1
        if os.environ.get("ZSA_EVAL_TEST_FAIL") and type(self).calls > 1:
            raise RuntimeError("the accelerator went away")
        return super().embed_audio(inputs)


class Remote(ToyClapFamily):
    """A family with no torch module of its own to fingerprint (as a model behind an API would be)."""

    name = "remote"

    def __init__(self, model, device, dtype, window_seconds=2.0, fingerprint=None):
        super().__init__(None, device, dtype, window_seconds, fingerprint)  # no module for zsa-eval to hash
        self.network = model.to(device=device, dtype=dtype).eval()

    @property
    def frame_seconds(self):
        return self.network.audio.n_fft / self.sampling_rate

    @torch.inference_mode()
    def embed_audio(self, inputs):
        audio = self.network.audio(inputs["waveform"].to(self.device, self.dtype))
        return list(torch.nn.functional.normalize(audio.float(), dim=-1))

    @torch.inference_mode()
    def embed_texts(self, texts):
        return torch.nn.functional.normalize(self.network.text(list(texts)).float(), dim=-1)

    def logits(self, audio, classifier):
        return torch.stack(list(audio)) @ classifier.T * 10.0


class BatchDependent(ToyClapFamily):
    """Centres each batch's embeddings on their mean: a clip's embedding depends on its neighbours."""

    name = "batch_dependent"

    def embed_audio(self, inputs):
        embeddings = torch.stack(super().embed_audio(inputs))
        return list(embeddings - 0.5 * embeddings.mean(dim=0))
