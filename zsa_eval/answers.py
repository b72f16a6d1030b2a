"""What a scoring family (an audio language model) is asked, and how its written answer becomes a class.

The instruction (`template.instruction`) may hold one slot, `{labels}`: the candidate labels, comma-separated, in
the dataset's class order. Generate mode needs it (a model that is not told the classes names them in its own words,
and the run would measure how often those words happen to be class names); likelihood mode does not (every candidate
is scored anyway), but telling the model the candidates makes it expect them as answers.

An answer matches a class in this order:
1. exact: the answer and the label are equal once normalized (lower case; `_` and `-` as spaces; other punctuation
   dropped; the articles a, an, the dropped; spaces collapsed): "The Sea-Waves." is `sea_waves`;
2. fuzzy, a label inside the answer: exactly one label appears in the normalized answer as whole words, not
   counting labels inside a longer label that appears too ("a dog is barking" is `dog`; "dog and cat": none);
3. fuzzy, a close spelling: the one label whose difflib similarity ratio to the answer is the highest and at least
   FUZZY_RATIO ("dogs" is `dog`; a tie: none).
Anything else matches no class and counts as wrong.

`template.answer_matching` names the rules: `zsa` (the above) or `mill`, Mill's (haideraltahan/Mill
mill/tasks/esc50/task.py, esc50_gen_acc, read at b541cbeb): lower case, `_` as spaces, spaces collapsed (punctuation
and articles kept); an empty answer matches none; else the longest label found anywhere in the answer as a substring
(not only as whole words: "rain" is inside "train", "hen" inside "when"), the first in class order among labels of
that length; an answer equal to a label is exact, another containing one a substring match.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zsa_eval.errors import UserError

LABELS_SLOT = "labels"
FUZZY_RATIO = 0.8
ARTICLES = {"a", "an", "the"}


def instruction_slots(instruction: str) -> list[str]:
    """The named slots of an instruction (`{labels}` -> ["labels"]), or one line on a malformed one."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(instruction) if name is not None]
    except ValueError as error:
        raise UserError(f"template.instruction={instruction!r} is not a valid template ({error}): write the "
                        "candidates' place as {labels} and a literal brace as {{ or }}") from error


def check_instruction(instruction: str | None, scoring: str) -> None:
    """An instruction whose only slot is {labels}, which generate mode needs."""
    if not instruction:
        raise UserError("an audio language model needs an instruction: set template.instruction='What is the main "
                        "sound in this recording? Answer with one of: {labels}.'")
    slots = instruction_slots(instruction)
    unknown = [slot for slot in slots if slot != LABELS_SLOT]
    if unknown:
        raise UserError(f"template.instruction={instruction!r} has the slot {{{unknown[0]}}}: its only slot is "
                        "{labels} (the candidate labels, comma-separated)")
    if scoring == "generate" and LABELS_SLOT not in slots:
        raise UserError(f"model.scoring=generate needs the instruction to list the candidates, so that the answer can "
                        f"name one: add {{labels}} to template.instruction={instruction!r}, or use "
                        "model.scoring=likelihood")


def filled_instruction(instruction: str, candidate_labels: Sequence[str]) -> str:
    """The instruction with its {labels} slot (if any) filled with the candidates, comma-separated."""
    return instruction.format(**{LABELS_SLOT: ", ".join(candidate_labels)})


def normalized(text: str) -> str:
    """Lower case, `_`/`-` as spaces, other punctuation dropped, articles dropped, spaces collapsed."""
    words = re.sub(r"[^\w\s]|_", " ", text.lower().replace("-", " ")).split()
    return " ".join(word for word in words if word not in ARTICLES)


@dataclass(frozen=True)
class Match:
    """The class an answer names (its index in the candidates, None for none) and how it was found: exact, fuzzy
    (zsa's rules), substring (Mill's) or none."""

    index: int | None
    kind: str


def contained(phrase: str, text: str) -> bool:
    """Whether `phrase` occurs in `text` as whole words."""
    return bool(phrase) and f" {phrase} " in f" {text} "


def match_answer(answer: str, candidate_labels: Sequence[str]) -> Match:
    """The class an answer names, by the rules in this module's docstring."""
    said = normalized(answer)
    labels = [normalized(label) for label in candidate_labels]
    exact = [index for index, label in enumerate(labels) if label == said]
    if len(exact) == 1:
        return Match(exact[0], "exact")
    inside = [index for index, label in enumerate(labels) if contained(label, said)]
    outermost = [index for index in inside if not any(
        labels[other] != labels[index] and contained(labels[index], labels[other]) for other in inside)]
    if len(outermost) == 1:
        return Match(outermost[0], "fuzzy")
    if inside:
        return Match(None, "none")
    ratios = [difflib.SequenceMatcher(None, said, label).ratio() for label in labels]
    best = max(ratios, default=0.0)
    if best >= FUZZY_RATIO and ratios.count(best) == 1:
        return Match(ratios.index(best), "fuzzy")
    return Match(None, "none")


def mill_normalized(text: str) -> str:
    """Mill's normalization: lower case, `_` as spaces, spaces collapsed."""
    return " ".join(text.lower().replace("_", " ").split())


def match_mill(answer: str, candidate_labels: Sequence[str]) -> Match:
    """The class an answer names by Mill's rules (this module's docstring)."""
    said = mill_normalized(answer)
    labels = [mill_normalized(label) for label in candidate_labels]
    inside = [index for index, label in enumerate(labels) if said and label and label in said]
    if not inside:
        return Match(None, "none")
    longest = max(inside, key=lambda index: len(labels[index]))  # the first of the longest, as Mill's max() picks
    return Match(longest, "exact" if labels[longest] == said else "substring")


ANSWER_MATCHING: dict[str, Callable[[str, Sequence[str]], Match]] = {"zsa": match_answer, "mill": match_mill}
MATCH_KINDS = {"zsa": ("exact", "fuzzy", "none"), "mill": ("exact", "substring", "none")}  # what each rule set finds
