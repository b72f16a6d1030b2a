"""The run config checked against its schema (zsa_eval.config.schema): `checked(cfg)` checks the ranges and the group
configs (each dataset loader, the model, the template, the protocol), takes a single value where a list is expected,
and names any mistake and what is allowed in one line; the published figures' entries and the settings that
contradict each other are checked here too."""

import difflib
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Union, get_args, get_origin

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from zsa_eval.config.schema import (CONFIG_DIR, DATASET_SCHEMAS, GROUPS, PROTOCOL_SCHEMAS, LongAudioConfig,
                                    ModelConfig, ReferenceConfig, RunConfig, TemplateConfig)
from zsa_eval.errors import UserError
from zsa_eval.long_audio import POLICY_KEYS, check_engine_policy


TYPE_NAMES = {int: ("a whole number", "whole numbers"), float: ("a number", "numbers"),
              bool: ("true or false", "booleans"), str: ("text", "strings")}


def without_none(annotation: Any) -> tuple[Any, bool]:
    """`Optional[X]` -> (X, True); X -> (X, False)."""
    if get_origin(annotation) is Union:
        return [arg for arg in get_args(annotation) if arg is not type(None)][0], True
    return annotation, False


def is_list(annotation: Any) -> bool:
    return get_origin(without_none(annotation)[0]) in (list, List)


def is_mapping(annotation: Any) -> bool:
    return get_origin(without_none(annotation)[0]) in (dict, Dict)


def allowed(schema_field) -> str:
    """What a key takes, in words: "a whole number of at least 1", "one of fp32, fp16, bf16", "..., or null"."""
    annotation, optional = without_none(schema_field.type)
    rule = schema_field.metadata.get("rule")
    if is_dataclass(schema_field.default_factory):
        return f"keys of its own ({', '.join(item.name for item in fields(schema_field.default_factory))}), " \
            f"set as {schema_field.name}.<key>=..."
    if is_list(annotation):
        item = get_args(annotation)[0]
        text = f"one or a list of {TYPE_NAMES[item][1] if item in TYPE_NAMES else 'mappings'}" + (f", {rule.allowed}" if rule else "")
    elif is_mapping(annotation):
        text = "a mapping of text to text, e.g. {ANG: anger}"
    elif rule and rule.names_values:
        text = rule.allowed
    else:
        text = TYPE_NAMES.get(annotation, ("any value",))[0] + (f" {rule.allowed}" if rule else "")
    return text + (", or null" if optional else "")


def shown(value: Any) -> str:
    """A value as it was written on the command line."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(map(shown, value)) + "]"
    return "null" if value is None else str(value)


def invalid(path: str, value: Any, schema_field) -> UserError:
    return UserError(f"{path}={shown(value)} is not valid: {path} takes {allowed(schema_field)}")


def known_keys(parent: str) -> list[str]:
    """The keys the schema allows under a dotted path ("" for the top level; a dataset: any loader's keys)."""
    if parent == "dataset":
        return list(dict.fromkeys(item.name for schema in DATASET_SCHEMAS.values() for item in fields(schema)))
    if parent == "protocol":
        return list(dict.fromkeys(item.name for schema in PROTOCOL_SCHEMAS.values() for item in fields(schema)))
    schema = {"": RunConfig, "model": ModelConfig, "template": TemplateConfig,
              "long_audio": LongAudioConfig}.get(parent)
    if schema is None:
        found = schema_field_at(parent)
        schema = found.default_factory if found and is_dataclass(found.default_factory) else None
    return [item.name for item in fields(schema)] if schema else []


CLASS_SELECTION_KEYS = ("classes", "folds", "subset")  # what a retrieval dataset (clips and captions) lacks
FAMILY_KEYS = {"max_seconds": "PE-Audio models", "frame_pooling": "frame-level PE-Audio models",  # model keys of
               "scoring": "audio language models", "max_new_tokens": "audio language models",  # one family
               "label_batch_size": "audio language models", "short_clip_fusion": "CLAP models",
               "int16_roundtrip": "CLAP models", "laion_loader_length": "CLAP models", "tokenizer": "CLAP models",
               "weights_file": "MS-CLAP models"}


def presets_setting(key: str, shown: int = 12) -> str:
    """The model presets (conf/model/*.yaml but auto, which sets every key) that set model.`key`, as `model=...`."""
    names = sorted(path.stem for path in Path(CONFIG_DIR, "model").glob("*.yaml")
                   if path.stem != "auto" and key in OmegaConf.load(path))
    return "model=" + ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def no_classes_in_retrieval(name: str, key: str) -> UserError:
    return UserError(f"dataset.{key} selects classes or folds, which a retrieval dataset ({name}) does not have; "
                     f"drop dataset.{key} (use limit=N for fewer clips)")


def unknown_key(path: str, known: list[str] | None = None, where: str = "",
                dataset: dict | None = None) -> UserError:
    """A key the schema does not have, with the one it most likely meant; `dataset`: the chosen dataset's config,
    when known (the advice to add a key with `+` must not lead to a refusal)."""
    parent, _, name = path.rpartition(".")
    known = known_keys(parent) if known is None else known
    if parent == "dataset" and name in CLASS_SELECTION_KEYS and (dataset or {}).get("task") == "retrieval":
        return no_classes_in_retrieval(dataset.get("name", "?"), name)
    if parent == "long_audio" and name in known:
        return long_audio_key_elsewhere(name)
    owners = [protocol for protocol, schema in PROTOCOL_SCHEMAS.items()
              if name in (item.name for item in fields(schema))]
    if parent == "protocol" and owners:  # a key of other protocols than the chosen one
        return UserError(f"protocol.{name} is a setting of protocol={' and of protocol='.join(owners)}, not of the "
                         f"chosen protocol: choose {'that' if len(owners) == 1 else 'one of those'}, or drop "
                         f"protocol.{name}")
    if parent == "model" and name in FAMILY_KEYS:
        return UserError(f"{path} is a setting of {FAMILY_KEYS[name]}, which this model file does not set: choose one "
                         f"of them ({presets_setting(name)}), or model=auto with such a checkpoint "
                         f"(model=auto model.name_or_path=... {path}=VALUE)")
    if parent == "model.options":  # a family's own keys: free-form, each new one added with `+`
        return UserError(f"{path} is a new key of the family's options: add it with +{path}=VALUE")
    if name in known:  # the schema has it, but the chosen group file does not set it: add it with `+`
        return UserError(f"{path} is not set by this {parent} file: add it with +{path}=VALUE")
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {parent + '.' if parent else ''}{close[0]}? " if close else ""
    listed = f"{where or parent or 'the config'} takes {', '.join(known)}" if len(known) <= 20 else \
        "--help lists every key"
    return UserError(f"unknown key {path}: {hint}{listed}")


def schema_field_at(path: str):
    """The schema field of a dotted top-level path (`seed`, `gate.min_accuracy`), or None."""
    schema, found = RunConfig, None
    for part in path.split("."):
        declared = {item.name: item for item in fields(schema)} if schema else {}
        if part not in declared:
            return None
        found = declared[part]
        schema = found.default_factory if is_dataclass(found.default_factory) else None
    return found


def typed(schema: type, values: dict, prefix: str, where: str) -> dict:
    """`values` converted to the schema's types and checked against its rules (a single value where a list is
    expected becomes a list of one). Schema defaults fill in keys left out; required keys must be there."""
    node = OmegaConf.structured(schema)
    declared = {item.name: item for item in fields(schema)}
    for name, value in values.items():
        path = f"{prefix}{name}"
        if name not in declared:
            raise unknown_key(path, list(declared), where)
        schema_field = declared[name]
        if is_dataclass(schema_field.default_factory):
            if not isinstance(value, dict):
                raise invalid(path, value, schema_field)
            node[name] = OmegaConf.merge(node[name], typed(schema_field.default_factory, value, f"{path}.", path))
            continue
        try:
            node[name] = [value] if is_list(schema_field.type) and not isinstance(value, (list, type(None))) else value
        except OmegaConfBaseException as error:
            raise invalid(path, value, schema_field) from error
        rule = schema_field.metadata.get("rule")
        if rule and node[name] is not None and not rule.accepts(node[name]):
            raise invalid(path, value, schema_field)
    container = OmegaConf.to_container(node)
    result = {}
    for name, schema_field in declared.items():
        if not OmegaConf.is_missing(node, name):
            result[name] = container[name]
        elif schema_field.metadata.get("required"):
            raise UserError(f"{where} has no {name}: add `{name}: ...` to its config file or {prefix}{name}=... "
                            "to the command")
    return result


def group_schema(group: str, values: dict) -> type:
    """The schema of a group's chosen config; a dataset's depends on its loader (`_target_`)."""
    if group == "model":
        return ModelConfig
    if group == "template":
        return TemplateConfig
    if group == "long_audio":
        return LongAudioConfig
    if group == "protocol":
        if values.get("name") not in PROTOCOL_SCHEMAS:
            raise UserError(f"protocol {values.get('name')!r} is not a protocol zsa-eval knows: a protocol file's "
                            f"name is one of {', '.join(PROTOCOL_SCHEMAS)}")
        return PROTOCOL_SCHEMAS[values["name"]]
    target = values.get("_target_")
    if target not in DATASET_SCHEMAS:
        problem = "has no _target_" if target is None else f"has an unknown _target_ {target}"
        raise UserError(f"dataset={values.get('name', '?')} {problem}: add `_target_:` naming its loader (one of "
                        f"{', '.join(DATASET_SCHEMAS)}), or start the file with `defaults: [audiofolder]` to build "
                        "on a shipped dataset config")
    return DATASET_SCHEMAS[target]


RETRIEVAL_LOADERS = ("zsa_eval.data.load_hub_dataset", "zsa_eval.data.load_audiofolder",
                     "zsa_eval.data.load_mteb_task")


def check_dataset_task(dataset: dict) -> None:
    """The keys a dataset's task needs: a label column to classify, a caption column (on a Hub dataset or a local
    folder) to retrieve."""
    name = dataset.get("name", "?")
    if dataset.get("task") == "reranking":  # queries rank documents: no label
        return
    if dataset.get("task", "classification") != "retrieval":
        if "label_column" not in dataset:
            raise UserError(f"dataset={name} has no label_column: add `label_column: ...` to its config file or "
                            "dataset.label_column=... to the command")
        return
    chosen = [key for key in CLASS_SELECTION_KEYS if dataset.get(key) is not None]
    if chosen:
        raise no_classes_in_retrieval(name, chosen[0])
    if dataset["_target_"] not in RETRIEVAL_LOADERS:
        raise UserError(f"dataset={name}: task retrieval needs a Hub dataset or a local folder with a metadata.csv "
                        f"(_target_ one of {', '.join(RETRIEVAL_LOADERS)}), not {dataset['_target_']}")
    if not dataset.get("caption_column"):
        raise UserError(f"dataset={name} has task retrieval but no caption_column: add dataset.caption_column=... "
                        "naming the column that holds each clip's caption (or list of captions)")


def long_audio_key_elsewhere(name: str) -> UserError:
    """A long_audio key set for a policy that does not take it."""
    policies = [policy for policy, keys in POLICY_KEYS.items() if name in keys]
    return UserError(f"long_audio.{name} is a setting of long_audio={' or long_audio='.join(policies)}: choose that "
                     f"policy (e.g. long_audio={policies[0]} long_audio.{name}=...) or drop long_audio.{name}")


def check_pipeline_model(result: dict) -> None:
    """transformers' pipeline featurizes with ClapFeatureExtractor: short clips through fusion, no int16 round
    trip."""
    model = result["model"]
    if result["engine"] != "pipeline":
        return
    if model.get("short_clip_fusion") == "laion":
        raise UserError("engine=pipeline hears a fused checkpoint's short clips through its fusion branch, as "
                        "transformers' feature extractor marks them: use model.short_clip_fusion=transformers (or "
                        "auto) with it, or engine=embed for laion's way")
    if model.get("int16_roundtrip"):
        raise UserError("engine=pipeline feeds each clip to transformers' feature extractor as decoded: drop "
                        "model.int16_roundtrip=true, or use engine=embed")


def check_long_audio(result: dict) -> None:
    """Each policy takes only its own keys; transformers' pipeline hears every clip its own way (native)."""
    long_audio = result["long_audio"]
    policy = long_audio["name"]
    stray = [name for name, value in long_audio.items()
             if name != "name" and value is not None and name not in POLICY_KEYS[policy]]
    if stray:
        raise long_audio_key_elsewhere(stray[0])
    check_engine_policy(result["engine"], policy)


ZEROSHOT_PROTOCOL = "zeroshot"
MTEB_PROTOCOL = "mteb"  # conf/protocol/mteb.yaml: mteb's own evaluator of a task


def checked_evaluation(evaluation: dict | None, where: str) -> dict:
    """A reference's `evaluation` (the run protocol its figure was measured under): a protocol's name and any of
    that protocol's settings; none given is zero-shot."""
    evaluation = {"name": ZEROSHOT_PROTOCOL} if evaluation is None else dict(evaluation)
    name = evaluation.get("name")
    if name not in PROTOCOL_SCHEMAS:
        raise UserError(f"{where}: evaluation.name={shown(name)} is not valid: evaluation.name takes one of "
                        f"{', '.join(PROTOCOL_SCHEMAS)} (the protocol the figure was measured under)")
    settings = [item.name for item in fields(PROTOCOL_SCHEMAS[name]) if item.name not in ("name", "folder")]
    stray = [key for key in evaluation if key != "name" and key not in settings]
    if stray:
        raise UserError(f"{where}: evaluation.{stray[0]} is not a setting of protocol={name}"
                        + (f" (it takes {', '.join(settings)})" if settings else " (it has none)"))
    return evaluation


def checked_mteb_figure(reference: dict, where: str) -> dict:
    """An MTEB result file's figure (`mteb_task`): the mteb version and the data its file names are part of its
    protocol. Returns its evaluation: protocol=mteb, that task's evaluator, that version."""
    if reference.get("evaluation") is not None:
        raise UserError(f"{where}: an mteb figure's protocol is its mteb_task and mteb_version: drop its evaluation")
    for needed, what in (("mteb_version", "the mteb version its result file names"),
                         ("data", "the Hub copy and revision its result file names, as hub_id@revision")):
        if reference.get(needed) is None:
            raise UserError(f"{where} has mteb_task but no {needed}: add `{needed}: ...` ({what})")
    return {"name": MTEB_PROTOCOL, "mteb_task": reference["mteb_task"], "mteb_version": reference["mteb_version"]}


def checked_references(dataset: dict) -> list[dict] | None:
    """The dataset's `references:`, each entry typed and checked against ReferenceConfig: ids unique, an interval
    of two ordered bounds, and a reproducible classification figure names its prompts."""
    entries = dataset.get("references")
    if entries is None:
        return None
    name = dataset.get("name", "?")
    if not isinstance(entries, list):
        entries = [entries]
    checked_entries, seen = [], set()
    for position, entry in enumerate(entries):
        where = f"dataset={name} reference {position + 1}"
        if not isinstance(entry, dict):
            raise UserError(f"{where} is {shown(entry)}, not a mapping: write each reference as `- id: ...` with "
                            f"the keys {', '.join(item.name for item in fields(ReferenceConfig))}")
        where = f"dataset={name} reference {entry.get('id') or position + 1}"
        missing = [item.name for item in fields(ReferenceConfig)
                   if item.metadata["required"] and item.name not in entry]
        if missing:
            raise UserError(f"{where} has no {missing[0]}: add `{missing[0]}: ...` to it in the dataset's config file")
        try:
            reference = typed(ReferenceConfig, entry, "", "a reference")
        except UserError as error:
            raise UserError(f"{where}: {error}") from error
        if reference["id"] in seen:
            raise UserError(f"{where}: the id is used twice in dataset={name}; give each reference its own id")
        seen.add(reference["id"])
        if reference.get("mteb_version") is not None and reference.get("mteb_task") is None:
            raise UserError(f"{where} has mteb_version but no mteb_task: add `mteb_task: ...` (its result file's "
                            "task_name)")
        reference["evaluation"] = (checked_mteb_figure(reference, where) if reference.get("mteb_task") is not None
                                   else checked_evaluation(reference.get("evaluation"), where))
        interval = reference.get("interval")
        if interval is not None and (len(interval) != 2 or interval[0] > interval[1]):
            raise UserError(f"{where}: interval={shown(interval)} is not valid: interval takes [low, high]")
        if (dataset.get("task", "classification") != "retrieval" and reference.get("unsupported") is None
                and not reference.get("prompts") and reference["evaluation"]["name"] == ZEROSHOT_PROTOCOL):
            raise UserError(f"{where}: name the prompts it was measured with (`prompts: [...]`), or say why "
                            "zsa-eval cannot reproduce it (`unsupported: ...`)")
        checked_entries.append(reference)
    return checked_entries


def check_output_outside_data(config: dict) -> None:
    """A run directory inside the dataset's folder would be read as part of the dataset on the next run (its report
    clips, say): refused."""
    data_path = config["dataset"].get("path")
    if not data_path:
        return
    data_folder = Path(data_path).expanduser().resolve()
    if data_folder == data_folder.parent:
        raise UserError(f"dataset.path={data_path} is the root of the file system: point it at the folder that holds "
                        "the dataset's audio (dataset.path=/data/my_sounds)")
    output_dir = Path(config["output_dir"]).expanduser().resolve()
    if output_dir == data_folder or data_folder in output_dir.parents:
        raise UserError(f"output_dir={config['output_dir']} is inside dataset.path={data_path}: the run's files (its "
                        "report clips among them) would join the dataset on the next run; write the results "
                        "outside it (output_dir=... or results_dir=...)")


def check_protocol(protocol: dict) -> None:
    """Few-shot settings that contradict each other: no shots without the text to start from, a headline
    classifier the settings do not train."""
    if protocol["name"] != "few_shot":
        return
    shots, text_init, classifier = protocol["shots"], protocol["text_init"], protocol["classifier"]
    if shots == 0 and not text_init:
        raise UserError("protocol.shots=0 draws no clip to learn from: set protocol.shots=1 or more, or "
                        "protocol.text_init=true (0 shots is then the zero-shot prompt classifier)")
    if classifier == "text_prototype" and not text_init:
        raise UserError("protocol.classifier=text_prototype needs protocol.text_init=true (its prototypes start "
                        "from the class's text embedding)")
    if shots == 0 and classifier in ("logistic_regression", "prototype"):
        raise UserError(f"protocol.classifier={classifier} learns from shots, and protocol.shots=0 draws none: use "
                        "protocol.classifier=text_prototype (or auto)")


def resolver_error(error: BaseException) -> UserError | None:
    """The one line a resolver raised (dataset=mteb's mteb_task_kind), which OmegaConf wraps, if any."""
    while error is not None and not isinstance(error, UserError):
        error = error.__cause__ or error.__context__
    return error


def checked(cfg: DictConfig) -> DictConfig:
    """The config resolved, typed and checked against the schema; a mistake raises one UserError naming the key,
    the value and what is allowed."""
    try:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        raised = resolver_error(error)
        if raised is not None:
            raise raised from None
        raise UserError(f"{error.full_key} has no value: set {error.full_key}=... on the command line "
                        "or in the config") from error
    values.pop("hydra", None)
    result = typed(RunConfig, values, "", "the config")
    for group in GROUPS:
        if not isinstance(result[group], dict):
            raise UserError(f"{group}={shown(result[group])} is not a config of the {group} group: "
                            f"use {group}=<option> (--help lists them)")
        result[group] = typed(group_schema(group, result[group]), result[group], f"{group}.",
                              f"{group}={result[group].get('name', '?')}")
    if "references" in result["dataset"]:
        result["dataset"]["references"] = checked_references(result["dataset"])
    check_dataset_task(result["dataset"])
    check_long_audio(result)
    check_pipeline_model(result)
    check_protocol(result["protocol"])
    check_output_outside_data(result)
    return OmegaConf.create(result)
