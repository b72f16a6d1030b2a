"""Audio language models of the omni generation as zero-shot classifiers, through alm.py's AudioLanguageFamily
(likelihood on the prompt's key-value cache, greedy generate), as transformers 5.25 implements them (no remote code).

- `qwen2_5_omni` (its thinker, Qwen2_5OmniThinkerForConditionalGeneration; Qwen2_5OmniProcessor's audio and text
  parts): a WhisperFeatureExtractor at 16 kHz with 128 mel bins, padded to its n_samples (the checkpoint's
  preprocessor config says how long; a longer clip is cut there, and that length is what the family hears); the
  chat template writes an audio item as "<|audio_bos|><|AUDIO|><|audio_eos|>" where it stands in the user's turn
  (we put it before the instruction, as the model card's examples do) and the processor repeats <|AUDIO|> once per
  40 ms of real audio; a turn ends with <|im_end|>; "You are a helpful assistant." is the system turn when there is
  none. The thinker places tokens with multimodal rotary positions: a continuation on the prompt's cache is given
  its positions (the prompt's offset kept by the model, `rope_deltas`), as transformers' generate gives them.
"""

from __future__ import annotations

import torch
from transformers import Qwen2_5OmniProcessor

from zsa_eval.families import Inputs
from zsa_eval.families.alm import AudioLanguageFamily


class AudioOnlyQwen2_5OmniProcessor(Qwen2_5OmniProcessor):
    """Qwen2_5OmniProcessor without its image and video processors: transformers checks a video processor's class
    through a mapping that needs torchvision, which audio never uses."""

    def check_argument_for_proper_class(self, argument_name: str, argument):
        if argument is None and argument_name in ("image_processor", "video_processor"):
            return None
        return super().check_argument_for_proper_class(argument_name, argument)


class Qwen2_5OmniFamily(AudioLanguageFamily):
    name = "qwen2_5_omni"
    model_types = ("qwen2_5_omni", "qwen2_5_omni_thinker")
    model_class = "Qwen2_5OmniThinkerForConditionalGeneration"

    @classmethod
    def load_processor(cls, name_or_path: str, options: dict) -> AudioOnlyQwen2_5OmniProcessor:
        """The checkpoint's tokenizer, feature extractor and chat template (chat_template.jinja or .json)."""
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        processor_dict, _ = Qwen2_5OmniProcessor.get_processor_dict(name_or_path, **options)
        return AudioOnlyQwen2_5OmniProcessor(
            feature_extractor=WhisperFeatureExtractor.from_pretrained(name_or_path, **options),
            tokenizer=AutoTokenizer.from_pretrained(name_or_path, **options),
            chat_template=processor_dict.get("chat_template"))

    @property
    def window_seconds(self) -> float:
        """The feature extractor's padded length (n_samples): a longer clip is cut there (counted in metrics.json
        `long_audio`)."""
        return self.feature_extractor.n_samples / self.feature_extractor.sampling_rate

    def continuation_inputs(self, prompt_length: int, count: int, width: int) -> Inputs:
        """Positions of `width` tokens after the prompt, in the thinker's three rotary sections, shifted by the
        offset its prompt pass left (`rope_deltas`)."""
        positions = torch.arange(prompt_length, prompt_length + width, device=self.device)
        positions = positions + self.model.model.rope_deltas.to(self.device).reshape(-1, 1)
        return {"position_ids": positions.expand(3, count, width)}
