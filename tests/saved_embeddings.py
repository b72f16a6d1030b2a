"""The tests' own mteb model, for checking protocol=mteb against mteb run directly: a clip's embedding is the one a
zsa-eval run saved for the clip with the same samples (mteb hands the model decoded audio), a text's is the family's;
cosine similarity, as mteb's CLAP models declare."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class SavedEmbeddings:
    """`by_samples`: a saved embedding by `key` of its clip's samples."""

    def __init__(self, by_samples: dict[bytes, np.ndarray], family, key: Callable[[np.ndarray], bytes]):
        from mteb.models.model_meta import ModelMeta, ScoringFunction

        self.by_samples, self.family, self.key = by_samples, family, key
        self.mteb_model_meta = ModelMeta.create_empty(overwrites={
            "name": "test/saved", "similarity_fn_name": ScoringFunction.COSINE, "modalities": ["audio", "text"]})

    def encode(self, inputs, **kwargs) -> np.ndarray:
        rows = []
        for batch in inputs:
            rows += ([self.by_samples[self.key(cell["array"])] for cell in batch["audio"]] if "audio" in batch
                     else list(self.family.embed_texts(list(batch["text"])).float().numpy()))
        return np.stack(rows)

    def similarity(self, first, second):
        from mteb.similarity_functions import cos_sim

        return cos_sim(first, second)

    def similarity_pairwise(self, first, second):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(first, second)
