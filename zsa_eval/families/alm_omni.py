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
- `voxtral` (VoxtralForConditionalGeneration, VoxtralProcessor): the tokenizer is mistral-common's (tekken.json,
  through transformers' MistralCommonBackend), which also writes the chat: "<s>[INST][BEGIN_AUDIO][AUDIO]...
  {instruction}[/INST]", the clip before the text, [AUDIO] repeated 12.5 times a second of the clip padded to
  whole 30 s chunks (375 per chunk); the processor cuts the log-mel features into the same 30 s chunks (3000
  frames each) for the Whisper-style encoder; answers end with </s>. Nothing in the processor caps the length; the
  model card states 40 minutes for audio understanding (its 32 k-token context), where this family cuts a clip.
"""

from __future__ import annotations

import base64
import importlib.util
import io
from collections.abc import Callable

import numpy as np
import soundfile as sf
import torch
from transformers import Qwen2_5OmniProcessor

from zsa_eval.errors import UserError
from zsa_eval.families import Inputs
from zsa_eval.families.alm import AudioLanguageFamily

VOXTRAL_SECONDS = 40 * 60  # mistralai/Voxtral-Mini-3B-2507's model card: "up to 40 minutes for understanding"


def require_mistral_common(what: str) -> None:
    """Voxtral's tokenizer is mistral-common's: refused in one line where it is not installed."""
    if importlib.util.find_spec("mistral_common") is None:
        raise UserError(f"{what} needs mistral-common, whose tokenizer (tekken.json) Voxtral uses and which places "
                        "its audio tokens; install it: pip install 'mistral-common[audio]' (it asks for numpy below "
                        "2.4 on Python 3.12 and older)")


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

    def continuation_inputs(self, positions: torch.Tensor) -> Inputs:
        """Positions of one row of tokens after the prompt, in the thinker's three rotary sections, shifted by the
        offset its prompt pass left (`rope_deltas`)."""
        shifted = positions + self.model.model.rope_deltas.to(self.device).reshape(-1)
        return {"position_ids": shifted.expand(3, 1, len(positions))}


def wav_base64(waveform: np.ndarray, sampling_rate: int) -> str:
    """The clip as a float32 WAV file in base64, the form mistral-common takes an audio item in (lossless)."""
    buffer = io.BytesIO()
    sf.write(buffer, waveform, sampling_rate, format="WAV", subtype="FLOAT")
    return base64.b64encode(buffer.getvalue()).decode()


class VoxtralFamily(AudioLanguageFamily):
    name = "voxtral"
    model_types = ("voxtral",)
    model_class = "VoxtralForConditionalGeneration"
    end_of_turn = "</s>"

    @classmethod
    def load_processor(cls, name_or_path: str, options: dict):
        require_mistral_common("model=voxtral")
        return super().load_processor(name_or_path, options)

    @property
    def window_seconds(self) -> float:
        """What the model card says it understands (40 min): a longer clip is cut there."""
        return float(VOXTRAL_SECONDS)

    def clip_conversation(self, waveform: np.ndarray, instruction: str) -> list[dict]:
        """The chat to ask, the clip itself in it (mistral-common counts its audio tokens from the clip)."""
        return [{"role": "user", "content": [{"type": "audio", "base64": wav_base64(waveform, self.sampling_rate)},
                                             {"type": "text", "text": instruction}]}]

    def prompt_text(self, instruction: str) -> str:
        """The chat as mistral-common writes it for a clip of 1 s (one 30 s chunk: 375 [AUDIO])."""
        silence = np.zeros(self.sampling_rate, dtype=np.float32)
        inputs = self.tokenizer.apply_chat_template(self.clip_conversation(silence, instruction), tokenize=True,
                                                    return_dict=True)
        return self.tokenizer.decode(inputs["input_ids"])

    def preparer(self, instruction: str) -> Callable[[np.ndarray, int], Inputs]:
        """mistral-common writes the chat with the clip (cut at the window) and counts its audio tokens; the
        processor computes the log-mel features of its 30 s chunks."""
        def prepare(waveform: np.ndarray, seed: int) -> Inputs:
            heard = waveform[:int(self.window_seconds * self.sampling_rate)]
            inputs = self.processor.apply_chat_template(self.clip_conversation(heard, instruction), tokenize=True,
                                                        return_dict=True, return_tensors="pt")
            return {key: value for key, value in inputs.items() if isinstance(value, torch.Tensor)}
        return prepare
