"""Finding a family: by the entry point a package registers in the group `zsa_eval.families` (zsa-eval's own
families are registered so, in its pyproject.toml), by a dotted path `package.module:Class`, or, for model=auto, by
the checkpoint: the family whose `model_types` hold its config.json `model_type`, or that `claims` a bare weights
file. A family that does not import or does not implement the API is refused in one line naming it."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib import metadata

from zsa_eval.entry_points import family_entry_points, provider
from zsa_eval.errors import UserError
from zsa_eval.families import AUDIO_EMBEDDING_KINDS, ModelFamily, ModelSpec
from zsa_eval.families.contract import family_label, first_line

KINDS = (*AUDIO_EMBEDDING_KINDS, "scoring")


def checked_class(loaded: object, source: str) -> type[ModelFamily]:
    """`loaded` if it is a concrete family class: a ModelFamily subclass with a name, a kind and every abstract
    method implemented; else one line naming `source` and what is wrong."""
    if not (isinstance(loaded, type) and issubclass(loaded, ModelFamily)):
        raise UserError(f"model.family={source} is {loaded!r}, not a model family: it must be a subclass of "
                        "zsa_eval.api.EmbeddingFamily, AudioEncoderFamily or ScoringFamily")
    if inspect.isabstract(loaded):
        missing = ", ".join(sorted(loaded.__abstractmethods__))
        raise UserError(f"{family_label(loaded)} (model.family={source}) does not implement {missing}: add "
                        f"{'them' if ',' in missing else 'it'} (see zsa_eval.api)")
    if not isinstance(getattr(loaded, "name", None), str) or getattr(loaded, "kind", None) not in KINDS:
        raise UserError(f"{family_label(loaded)} (model.family={source}) needs a class attribute `name` (a string) "
                        "and must subclass one of zsa_eval.api's family classes")
    return loaded


def load_entry(name: str, entry: metadata.EntryPoint) -> type[ModelFamily]:
    try:
        loaded = entry.load()
    except Exception as error:  # anything the plugin's module raises on import
        raise UserError(f"model.family={name}: the entry point {name} = {entry.value!r} ({provider(entry)}) does not "
                        f"import ({first_line(error)}); fix or reinstall that package") from error
    return checked_class(loaded, name)


def load_dotted(path: str) -> type[ModelFamily]:
    """`package.module:Class` (or `package.module.Class`)."""
    module_name, _, attribute = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attribute:
        raise UserError(f"model.family={path} is neither a registered family ({registered_names()}) nor a dotted "
                        "path package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise UserError(f"model.family={path}: module {module_name!r} does not import ({first_line(error)}); "
                        "install the package that holds it, or check the path") from error
    try:
        loaded = getattr(module, attribute)
    except AttributeError:
        raise UserError(f"model.family={path}: module {module_name!r} has no {attribute!r}") from None
    return checked_class(loaded, path)


def registered_names() -> str:
    return ", ".join(sorted(family_entry_points())) or "none registered"


def family_class(reference: str) -> type[ModelFamily]:
    """The family `model.family` names: a registered entry point, else a dotted path."""
    found = family_entry_points()
    if reference in found:
        return load_entry(reference, found[reference])
    if ":" in reference or "." in reference:
        return load_dotted(reference)
    raise UserError(f"model.family={reference} is not a registered family: choose one of {registered_names()}, or "
                    "give a dotted path package.module:Class")


def registered_families() -> list[type[ModelFamily]]:
    """Every registered family that imports, zsa-eval's own first (a third-party family that fails to import is
    left out here; naming it in model.family reports why)."""
    own, others = [], []
    for name, entry in sorted(family_entry_points().items()):
        try:
            family = load_entry(name, entry)
        except UserError:
            if entry.value.startswith("zsa_eval."):
                raise
            continue
        (own if entry.value.startswith("zsa_eval.") else others).append(family)
    if not own:
        raise UserError("zsa-eval's own model families are not registered: install zsa-eval as a package "
                        "(pip install -e . in a checkout), not only on PYTHONPATH")
    return own + others


def family_for_checkpoint(spec: ModelSpec, model_type_of: Callable[[str], str | None]) -> type[ModelFamily]:
    """model=auto: the family that claims spec's bare weights file, else the one whose model_types hold the
    checkpoint's config.json model_type (`model_type_of` reads it)."""
    families = registered_families()
    claiming = next((family for family in families if family.claims(spec)), None)
    if claiming is not None:
        return claiming
    model_type = model_type_of(spec.name_or_path)
    for family in families:
        if model_type is not None and model_type in family.model_types:
            return family
    known = sorted({model_type for family in families for model_type in family.model_types})
    raise UserError(f"model {spec.name_or_path!r} has model_type {model_type!r}, which zsa-eval cannot evaluate; "
                    f"supported model types: {', '.join(known)} (CLAP, PE-Audio, MS-CLAP and audio language model "
                    "checkpoints), or name a family for it: model.family=ENTRY_POINT or package.module:Class")
