"""Audio language models (an audio encoder in front of a chat language model) as zero-shot classifiers: each clip is
put to the model with an instruction, in the checkpoint's own chat format, and the model is scored on the candidate
labels as its answer.

- `likelihood`: each candidate answer's log-probability after the prompt, per token: the answer's tokens as
  the model would write them, then its end-of-turn token (so "dog" is scored as the whole answer, not as the start of
  "dog barking"), summed and divided by that token count. One forward pass over the clip's prompt (audio and
  instruction) fills the key-value cache; the answers then run packed end to end in one row after it
  (`label_batch_size` at a time), each token masked to see the prompt and its own answer, so a clip costs one prompt
  pass and one short pass per label batch, not one full pass per label, and the cache is never copied per answer
  (a model with sliding-window layers gets one copy per label batch: those layers drop keys as they go).
- `generate`: the greedy answer, at most `max_new_tokens` tokens, stopped at the end-of-turn token, as text.

Each clip is prepared and scored alone (no padding between clips), so its scores do not depend on batch size or
worker count.

The two model types, as transformers 5.24 implements them (checked in its source):
- `qwen2_audio` (Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor): a WhisperFeatureExtractor at 16 kHz
  with 128 mel bins pads or cuts every clip to 30 s (3000 frames: the encoder refuses any other length), so only
  the first 30 s are heard; the default chat template writes an audio item as "Audio 1: <|audio_bos|><|AUDIO|>
  <|audio_eos|>\\n" and the processor repeats <|AUDIO|> once per 40 ms of real audio (a 5 s clip: 125 tokens).
- `audioflamingo3` (AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Processor): the same Whisper features,
  but the processor cuts a clip into 30 s windows (up to max_audio_len, 600 s) and the checkpoint's chat template
  puts one <sound> before the user's text, repeated once per 40 ms of real audio across the windows.
Both end a turn with <|im_end|> and add the system turn "You are a helpful assistant." when there is none.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from zsa_eval.errors import UserError
from zsa_eval.families import Inputs, ModelSpec, ScoringFamily

SCORINGS = ("likelihood", "generate")
SCORE_KINDS = {"likelihood": "softmax", "generate": "answer"}
SCORE_DESCRIPTIONS = {
    "likelihood": "softmax over the candidate labels of each label's log-likelihood as the model's answer (mean "
                  "log-probability per token, end-of-turn token included)",
    "generate": "1 for the class the model's greedy answer matched (by template.answer_matching's rules; see "
                "unmatched.csv), 0 elsewhere; a row of 0 when it matched none",
}


@dataclass(frozen=True)
class ReadPrompt:
    """A clip's prompt after one pass: its key/value cache, its token count, and the log-probabilities of the token
    after it (every answer's first token)."""
    cache: Any
    length: int
    first_log_probs: torch.Tensor


def check_scoring_settings(scoring, max_new_tokens, label_batch_size) -> None:
    """A scoring mode the family has; whole numbers of at least 1 for the answer length and the label batch."""
    if scoring not in SCORINGS:
        raise UserError(f"model.scoring={scoring} is not a scoring mode: use model.scoring=likelihood (each label's "
                        "log-likelihood as the answer) or model.scoring=generate (the model's own answer)")
    for key, value in (("max_new_tokens", max_new_tokens), ("label_batch_size", label_batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"model.{key}={value} must be a whole number of at least 1, e.g. model.{key}=8")


class AudioLanguageFamily(ScoringFamily):
    """An audio language model whose processor takes the clip through its chat template."""

    model_class: ClassVar[str]  # the transformers class that loads the checkpoint
    end_of_turn: ClassVar[str] = "<|im_end|>"  # the token that closes the assistant's answer
    processor_options: ClassVar[dict] = {}  # the processor's keyword arguments beyond the text and the clip
    feature_extractor_attribute: ClassVar[str] = "feature_extractor"  # the processor's attribute holding it

    def __init__(self, model: torch.nn.Module, processor, device: torch.device, dtype: torch.dtype, scoring: str,
                 max_new_tokens: int, label_batch_size: int):
        super().__init__(device, dtype, model)
        check_scoring_settings(scoring, max_new_tokens, label_batch_size)
        self.processor = processor
        self.feature_extractor = getattr(processor, self.feature_extractor_attribute)
        self.tokenizer = processor.tokenizer
        self.scoring, self.max_new_tokens, self.label_batch_size = scoring, max_new_tokens, label_batch_size
        self.score_kind, self.score_description = SCORE_KINDS[scoring], SCORE_DESCRIPTIONS[scoring]
        self.end_of_turn_id = self.tokenizer.convert_tokens_to_ids(self.end_of_turn)
        if self.end_of_turn_id is None or self.end_of_turn_id == self.tokenizer.unk_token_id:
            raise UserError(f"the tokenizer of this {self.name} checkpoint has no {self.end_of_turn} token to end an "
                            "answer with; point model.name_or_path at a chat (Instruct) checkpoint")
        self.stop_ids = {self.end_of_turn_id, self.tokenizer.eos_token_id}

    @classmethod
    def load(cls, spec: ModelSpec) -> AudioLanguageFamily:
        """The model loaded in its dtype (a 7 B model in fp32 would need twice the memory), with its processor."""
        import transformers

        options = spec.hub_options()
        processor = cls.load_processor(spec.name_or_path, options)
        model = getattr(transformers, cls.model_class).from_pretrained(spec.name_or_path, dtype=spec.dtype, **options)
        return cls(model, processor, spec.device, spec.dtype, spec.settings.get("scoring"),
                   spec.settings.get("max_new_tokens"), spec.settings.get("label_batch_size"))

    @classmethod
    def load_processor(cls, name_or_path: str, options: dict):
        """The checkpoint's processor: its feature extractor, tokenizer and chat template."""
        import transformers

        return transformers.AutoProcessor.from_pretrained(name_or_path, **options)

    def settings(self) -> dict:
        """What shapes a score: the mode, and in generate mode the answer's length cap."""
        return {"scoring": self.scoring,
                **({"max_new_tokens": self.max_new_tokens} if self.scoring == "generate" else {})}

    @property
    def chat_writer(self):
        """What holds the checkpoint's chat template: its processor (a subclass may name its tokenizer)."""
        return self.processor

    def conversation(self, instruction: str) -> list[dict]:
        """The chat to ask: one user turn holding the clip, then the instruction."""
        return [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": instruction}]}]

    def prompt_text(self, instruction: str) -> str:
        """The chat up to where the model's answer begins, written by the checkpoint's chat template."""
        try:
            return self.chat_writer.apply_chat_template(self.conversation(instruction), add_generation_prompt=True,
                                                        tokenize=False)
        except ValueError as error:
            raise UserError(f"the processor of this {self.name} checkpoint cannot write a chat ({error}); point "
                            "model.name_or_path at a checkpoint that ships its chat template") from error

    def preparer(self, instruction: str) -> Callable[[np.ndarray, int], Inputs]:
        """The processor on the clip alone: its log-mel features and the prompt's tokens, the audio placeholder
        repeated once per audio token (no randomness: the seed is unused)."""
        text = self.prompt_text(instruction)

        def prepare(waveform: np.ndarray, seed: int) -> Inputs:
            inputs = self.processor(text=text, audio=waveform, sampling_rate=self.sampling_rate, return_tensors="pt",
                                    **self.processor_options)
            return {key: value for key, value in inputs.items() if isinstance(value, torch.Tensor)}
        return prepare

    def on_device(self, inputs: Inputs) -> Inputs:
        """One clip's inputs on the model's device, features in its dtype."""
        return {key: value.to(self.device, self.dtype if value.is_floating_point() else value.dtype)
                for key, value in inputs.items()}

    def answer_tokens(self, answers: Sequence[str]) -> list[list[int]]:
        """Tokenized alone, without special tokens: after the prompt's closing newline the model's tokenizer splits
        an answer the same way (Qwen2's pre-tokenizer cuts at the newline)."""
        return [self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.end_of_turn_id]
                for answer in answers]

    def answer_log_likelihoods(self, inputs: Inputs, answers: Sequence[Sequence[int]]) -> torch.Tensor:
        """One pass over the prompt (its cache kept), then the answers as continuations of it."""
        return self.continuation_log_likelihoods(self.read_prompt(inputs), answers)

    @torch.inference_mode()
    def read_prompt(self, inputs: Inputs) -> ReadPrompt:
        """One clip's prompt through the model: its cache, its length and its next token's log-probabilities."""
        inputs = self.on_device(inputs)
        output = self.model(**inputs, use_cache=True)
        return ReadPrompt(output.cache, inputs["input_ids"].shape[1], output.logits[0, -1].float().log_softmax(dim=-1))

    @torch.inference_mode()
    def continuation_log_likelihoods(self, prompt: ReadPrompt, answers: Sequence[Sequence[int]]) -> torch.Tensor:
        """Each answer's mean log-probability per token after the prompt, label_batch_size answers a pass."""
        return torch.cat([self.label_batch_log_likelihoods(prompt, answers[start:start + self.label_batch_size])
                          for start in range(0, len(answers), self.label_batch_size)])

    def label_batch_log_likelihoods(self, prompt: ReadPrompt, answers: Sequence[Sequence[int]]) -> torch.Tensor:
        """Mean log-probability per token of each answer: its first token from the prompt's last logits, the others
        from one pass of every answer but its last token, packed end to end in one row after the prompt. A
        block-causal mask lets each token see the prompt and its own answer's earlier tokens, at the positions it
        would have right after the prompt; the prompt's cache is read once for all of them, not copied per answer,
        and the pass's keys and values are cropped off it afterwards."""
        lengths = torch.tensor([len(answer) for answer in answers], device=self.device)
        totals = prompt.first_log_probs[torch.tensor([answer[0] for answer in answers], device=self.device)]
        fed, targets, owners, offsets = (part.to(self.device) for part in packed_continuations(answers))
        if len(fed) == 0:
            return totals / lengths
        sliding = any(prompt.cache.is_sliding)  # a sliding layer drops the prompt's keys: it gets a copy, not a crop
        cache = copy.deepcopy(prompt.cache) if sliding else prompt.cache
        try:
            logits = self.model(input_ids=fed[None], cache=cache, use_cache=False,
                                attention_mask=self.continuation_mask(owners, offsets, prompt.length),
                                **self.continuation_inputs(prompt.length + offsets)).logits[0]
        finally:
            if not sliding:
                cache.crop(prompt.length - cache.get_seq_length())
        token_log_probs = logits.log_softmax(dim=-1, dtype=torch.float32).gather(-1, targets[:, None])[:, 0]
        return totals.index_add(0, owners, token_log_probs) / lengths

    def continuation_mask(self, owners: torch.Tensor, offsets: torch.Tensor,
                          prompt_length: int) -> torch.Tensor | dict[str, torch.Tensor]:
        """The packed answers' attention mask; one per layer type for a model with sliding-window layers."""
        text_config = self.model.config.get_text_config()
        if "sliding_attention" not in (getattr(text_config, "layer_types", None) or ()):
            return block_causal_mask(owners, offsets, prompt_length, self.dtype)
        return {"full_attention": block_causal_mask(owners, offsets, prompt_length, self.dtype),
                "sliding_attention": block_causal_mask(owners, offsets, prompt_length, self.dtype,
                                                       text_config.sliding_window)}

    def continuation_inputs(self, positions: torch.Tensor) -> Inputs:
        """What else one row of tokens at `positions` (after the cached prompt) needs: their position ids."""
        return {"position_ids": positions[None]}

    @property
    def long_clips_heard(self) -> str:
        window = self.window_seconds  # None: the model hears a clip whole (Phi-4-multimodal), none is longer
        return super().long_clips_heard if window is None else f"only the first {window:g} s heard"

    @torch.inference_mode()
    def generate_answer(self, inputs: Inputs) -> str:
        """Greedy decoding on the prompt's cache, up to max_new_tokens tokens or the end of the turn."""
        inputs = self.on_device(inputs)
        output = self.model(**inputs, use_cache=True)
        length = inputs["input_ids"].shape[1]
        written: list[int] = []
        while True:
            token = int(output.logits[0, -1].argmax())
            if token in self.stop_ids:
                break
            written.append(token)
            if len(written) == self.max_new_tokens:
                break
            attention_mask = torch.ones((1, length + len(written)), dtype=torch.long, device=self.device)
            output = self.model(input_ids=torch.tensor([[token]], device=self.device), attention_mask=attention_mask,
                                cache=output.cache, use_cache=True,
                                **self.continuation_inputs(torch.tensor([length + len(written) - 1],
                                                                        device=self.device)))
        return self.tokenizer.decode(written, skip_special_tokens=True).strip()


def packed_continuations(answers: Sequence[Sequence[int]]) -> tuple[torch.Tensor, ...]:
    """Every answer but its last token, end to end: the tokens fed, the token each one predicts, the answer it belongs
    to and its offset in that answer."""
    fed, targets, owners, offsets = [], [], [], []
    for index, answer in enumerate(answers):
        fed += answer[:-1]
        targets += answer[1:]
        owners += [index] * (len(answer) - 1)
        offsets += range(len(answer) - 1)
    return tuple(torch.tensor(part, dtype=torch.long) for part in (fed, targets, owners, offsets))


def block_causal_mask(owners: torch.Tensor, offsets: torch.Tensor, prompt_length: int, dtype: torch.dtype,
                      window: int | None = None) -> torch.Tensor:
    """The additive attention mask (1, 1, tokens, prompt keys + tokens) of packed answers after a cached prompt: a
    token sees the prompt and its own answer's tokens up to itself. With a sliding `window`, the prompt keys are those
    a sliding layer keeps (its last window - 1), and a token sees only keys fewer than `window` positions back."""
    kept = prompt_length if window is None else min(prompt_length, window - 1)
    order = torch.arange(len(owners), device=owners.device)
    own = (owners[:, None] == owners[None, :]) & (order[None, :] <= order[:, None])
    sees_prompt = torch.ones((len(owners), kept), dtype=torch.bool, device=owners.device)
    if window is not None:
        prompt_positions = torch.arange(prompt_length - kept, prompt_length, device=owners.device)
        sees_prompt = (prompt_length + offsets)[:, None] - prompt_positions[None, :] < window
        own &= offsets[:, None] - offsets[None, :] < window
    sees = torch.cat([sees_prompt, own], dim=1)
    mask = torch.zeros(sees.shape, dtype=dtype, device=owners.device).masked_fill(~sees, torch.finfo(dtype).min)
    return mask[None, None]


class Qwen2AudioFamily(AudioLanguageFamily):
    name = "qwen2_audio"
    model_types = ("qwen2_audio",)
    model_class = "Qwen2AudioForConditionalGeneration"

    @property
    def window_seconds(self) -> float:
        """The Whisper window (30 s): the first 30 s of a longer clip are heard, the rest cut (counted in
        metrics.json `long_audio`)."""
        return float(self.feature_extractor.chunk_length)


class AudioFlamingo3Family(AudioLanguageFamily):
    name = "audioflamingo3"
    model_types = ("audioflamingo3",)
    model_class = "AudioFlamingo3ForConditionalGeneration"

    @property
    def window_seconds(self) -> float:
        """The processor's max_audio_len (600 s), heard as 30 s Whisper windows; the rest of a longer clip is cut."""
        return float(self.processor.max_audio_len)
