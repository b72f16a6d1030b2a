"""What the random-weight models share: a byte-level BPE tokenizer trained on a small local corpus, and writing a
model folder only where zsa-eval may."""

from __future__ import annotations

from pathlib import Path

from tokenizers import ByteLevelBPETokenizer
from tokenizers.processors import RobertaProcessing
from transformers import (
    RobertaTokenizerFast,
)

from zsa_eval.staging import write_folder


SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
TOKENIZER_CORPUS = [
    "This is a sound of {}.", "A sound of {}.", "The sound of {}.", "A recording of {}.", "An audio clip of {}.",
    "dog rooster pig cow frog cat hen insects sheep crow rain sea waves crackling fire crickets chirping birds",
    "water drops wind pouring water toilet flush thunderstorm crying baby sneezing clapping breathing coughing",
    "footsteps laughing brushing teeth snoring drinking sipping door wood knock mouse click keyboard typing",
    "door wood creaks can opening washing machine vacuum cleaner clock alarm clock tick glass breaking",
    "helicopter chainsaw siren car horn engine train church bells airplane fireworks hand saw",
    "low hum high beep white noise rising chirp clicks music speech silence tone",
]


def train_tokenizer(vocab_size: int = 400) -> RobertaTokenizerFast:
    """A byte-level BPE tokenizer with RoBERTa's <s> ... </s> framing, trained on a small local corpus."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TOKENIZER_CORPUS * 4, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=SPECIAL_TOKENS, show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                      ("<s>", bpe.token_to_id("<s>")))
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=64)


def write_model(out_dir: Path, write) -> Path:
    """Write a model folder at `out_dir` through `write(staging)`; a folder of other files there is refused."""
    return write_folder(out_dir, write, "config.json",
                        f"{out_dir} holds files but no model (config.json): zsa-eval writes a random-weight model "
                        "only into a new or empty folder, or over one it wrote; point model.name_or_path (or the "
                        "output folder) at a new folder")
