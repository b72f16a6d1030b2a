"""Gemma 3n and Phi-4-multimodal as audio language models (zsa_eval/families/alm.py: the same likelihood and
generate scoring), as transformers 5.25 implements them natively (checked in its source):

- `gemma3n` (Gemma3nForConditionalGeneration, Gemma3nProcessor): Gemma3nAudioFeatureExtractor at 16 kHz, 128 mel
  bins every 10 ms, truncating a clip to max_length 480,000 samples: the first 30 s are heard; the processor puts a
  fixed 188 audio tokens ("\\n\\n<start_of_audio>" + 188 x <audio_soft_token> + "<end_of_audio>\\n\\n", 6.25 per
  second of 30 s; a shorter clip's are padded) where the chat template writes the audio item. The chat template writes
  the BOS itself, so the processor adds none. Transformers builds its MobileNet-V5 vision tower with timm, even to
  hear audio: without timm the family refuses to load.
- `phi4_multimodal` (Phi4MultimodalForCausalLM, Phi4MultimodalProcessor): Phi4MultimodalFeatureExtractor at 16 kHz,
  80 log-mel bins every 10 ms, one <|audio|> token per 80 ms, nothing cut (the encoder takes 40 s at a time and
  encodes a longer clip as consecutive 40 s chunks); its chat template takes string contents only, so the clip is
  written as <|audio|> before the instruction in the user's text ("<|user|><|audio|>...<|end|><|assistant|>", as
  transformers' Phi-4 tests and the model card write it); answers end with <|end|>. The speech LoRA (the checkpoint's
  speech-lora folder, model.options.speech_lora) is loaded with PEFT: without it the model does not listen.
"""

from __future__ import annotations

import importlib.util

from zsa_eval.errors import UserError
from zsa_eval.families import ModelSpec
from zsa_eval.families.alm import AudioLanguageFamily

GEMMA3N_MAX_SAMPLES = 480_000  # Gemma3nAudioFeatureExtractor.__call__(max_length=480_000, truncation=True)


class Gemma3nFamily(AudioLanguageFamily):
    name = "gemma3n"
    model_types = ("gemma3n",)
    model_class = "Gemma3nForConditionalGeneration"
    end_of_turn = "<end_of_turn>"
    processor_options = {"add_special_tokens": False}  # the chat template writes <bos>

    @classmethod
    def load(cls, spec: ModelSpec) -> AudioLanguageFamily:
        """Refused in one line before any download when timm is missing (transformers needs it to build the model)."""
        if importlib.util.find_spec("timm") is None:
            raise UserError(f"model {spec.name} (gemma3n) needs timm, which zsa-eval does not install: transformers "
                            "builds Gemma 3n's MobileNet-V5 vision tower with timm even to hear audio; pip install "
                            "timm (it needs torchvision for your torch)")
        return super().load(spec)

    @property
    def window_seconds(self) -> float:
        """30 s: the feature extractor keeps a clip's first 480,000 samples."""
        return GEMMA3N_MAX_SAMPLES / self.sampling_rate


class Phi4MultimodalFamily(AudioLanguageFamily):
    name = "phi4_multimodal"
    model_types = ("phi4_multimodal",)
    model_class = "Phi4MultimodalForCausalLM"
    end_of_turn = "<|end|>"
    feature_extractor_attribute = "audio_processor"

    @classmethod
    def load(cls, spec: ModelSpec) -> AudioLanguageFamily:
        """The model, with its speech LoRA when model.options.speech_lora names the checkpoint's folder of it (peft
        missing: refused before any download)."""
        adapter = spec.options.get("speech_lora")
        if adapter and importlib.util.find_spec("peft") is None:
            raise UserError(f"model.options.speech_lora={adapter} needs peft, which zsa-eval does not install: pip "
                            "install peft (without the speech LoRA Phi-4-multimodal does not listen), or set "
                            "model.options.speech_lora=null")
        family = super().load(spec)
        if adapter:
            cls.load_speech_lora(family.model, spec, adapter)
            family.model.to(device=family.device, dtype=family.dtype)
        return family

    @staticmethod
    def load_speech_lora(model, spec: ModelSpec, adapter: str) -> None:
        """The checkpoint's speech LoRA loaded with PEFT: the model's only adapter, so the active one."""
        try:
            model.load_adapter(spec.name_or_path, adapter_name="speech", adapter_kwargs={
                "subfolder": adapter, "revision": spec.revision, "local_files_only": not spec.online})
        except (OSError, ValueError) as error:
            raise UserError(f"model.options.speech_lora={adapter}: no speech LoRA loaded from {spec.name_or_path} "
                            f"({error}); name the checkpoint's speech-lora folder, or set "
                            "model.options.speech_lora=null") from error

    @property
    def chat_writer(self):
        """The tokenizer: the conversion script leaves the chat template there (processor.chat_template is none)."""
        return self.tokenizer

    def conversation(self, instruction: str) -> list[dict]:
        """The clip as <|audio|> before the instruction, in the user's text (the template takes strings only)."""
        return [{"role": "user", "content": self.processor.audio_token + instruction}]

    @property
    def window_seconds(self) -> None:
        """None: every clip is heard whole (the encoder takes consecutive 40 s chunks)."""
        return None
