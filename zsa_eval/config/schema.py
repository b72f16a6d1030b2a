"""The run config's schema: every key's type and allowed values, declared once (Hydra structured configs).

conf/config.yaml holds the defaults and, beside each, one line saying what it means (`--help` shows both); the
dataclasses here hold types and ranges (zsa_eval.config.checks applies them, zsa_eval.config.help shows them)."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from zsa_eval.answers import ANSWER_MATCHING
from zsa_eval.long_audio import POLICIES

SOURCE_CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"  # a source checkout (editable install)
PACKAGED_CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"  # an installed wheel: conf/ as package data
CONFIG_DIR = str(PACKAGED_CONFIG_DIR if PACKAGED_CONFIG_DIR.is_dir() else SOURCE_CONFIG_DIR)
SCHEMA_NAME = "zsa_eval_schema"
GROUPS = ("dataset", "model", "template", "long_audio", "protocol")


@dataclass(frozen=True)
class Rule:
    """Which values of a key's type are allowed, and how to say so (`names_values`: the text lists them all)."""

    allowed: str
    accepts: Callable[[Any], bool]
    names_values: bool = False


def one_of(*choices: str) -> Rule:
    return Rule(f"one of {', '.join(choices)}", lambda value: value in choices, names_values=True)


def at_least(low: float) -> Rule:
    return Rule(f"of at least {low}", lambda value: value >= low)


def between(low: float, high: float) -> Rule:
    return Rule(f"from {low} to {high}", lambda value: low <= value <= high)


BELOW_ONE = Rule("above 0 and below 1", lambda value: 0 < value < 1)
EACH_ABOVE_ZERO = Rule("each above 0", lambda values: len(values) > 0 and all(value > 0 for value in values))
AUTO_OR_COUNT = Rule("auto or a whole number of at least 0", names_values=True, accepts=lambda value: value == "auto"
                     or (isinstance(value, int) and not isinstance(value, bool) and value >= 0))
DEVICE = Rule("auto, cpu, cuda or cuda:N", names_values=True,
              accepts=lambda value: re.fullmatch(r"auto|cpu|cuda(:\d+)?", value) is not None)
ABOVE_ZERO = Rule("above 0", lambda value: value > 0)
RANDOM_MODEL_KINDS = ("tiny", "full", "pe_tiny", "pe_frame_tiny", "pe_av_small",  # zsa_eval.random_models, kept light
                      "qwen2_audio_tiny", "audioflamingo3_tiny", "qwen2_5_omni_tiny", "voxtral_tiny",
                      "phi4_multimodal_tiny", "msclap_2022_tiny", "msclap_2023_tiny", "msclap_2022_full",
                      "msclap_2023_full")


def key(rule: Rule | None = None, required: bool = True) -> Any:
    """A schema field without a default (the YAML gives it). `required=False`: a group file may leave it out,
    and the loader's own default applies."""
    return field(default=MISSING, metadata={"rule": rule, "required": required})


@dataclass
class GateConfig:
    min_accuracy: Optional[float] = key(between(0, 1))
    baseline: Optional[str] = key()
    max_drop: float = key(at_least(0))
    reference: bool = key()


@dataclass
class RunConfig:
    """Top-level keys. The groups (dataset, model, template, long_audio, protocol) are typed by their own schemas
    below."""

    dataset: Any = key()
    model: Any = key()
    template: Any = key()
    long_audio: Any = key()
    protocol: Any = key()
    engine: str = key(one_of("embed", "pipeline"))
    device: str = key(DEVICE)
    precision: str = key(one_of("fp32", "fp16", "bf16"))
    batch_size: int = key(at_least(1))
    num_workers: Any = key(AUTO_OR_COUNT)
    featurizer: str = key(one_of("auto", "workers", "device"))
    limit: Optional[int] = key(at_least(1))
    limit_mode: str = key(one_of("stratified", "first"))
    seed: int = key()
    debug: bool = key()
    verbose: bool = key()
    on_error: str = key(one_of("skip", "raise"))
    max_skip_fraction: float = key(between(0, 1))
    resume: bool = key()
    overwrite: bool = key()
    progress: bool = key()
    cache: bool = key()
    save_embeddings: bool = key()
    report: bool = key()
    report_mistakes: int = key(at_least(0))
    report_mistakes_per_class: int = key(at_least(0))
    cache_dir: str = key()
    results_dir: str = key()
    output_dir: str = key()
    reference: Optional[str] = key()
    gate: GateConfig = field(default_factory=GateConfig)


@dataclass
class DatasetConfig:
    """What every dataset loader hands to `zsa_eval.data.items.build_dataset`: which column holds what, which items."""

    _target_: str = key()
    name: str = key()
    label_column: str = key(required=False)  # required by the classification tasks (check_dataset_task)
    label_delimiter: Optional[str] = key(required=False)  # task multilabel: labels joined in one string
    fold_column: Optional[str] = key(required=False)
    group_column: Optional[str] = key(required=False)  # each item's recording: a probe keeps a recording's clips together
    subset_column: Optional[str] = key(required=False)
    folds: Optional[List[int]] = key(required=False)
    subset: Optional[str] = key(required=False)
    classes: Optional[List[str]] = key(required=False)
    task: str = key(one_of("classification", "multilabel", "retrieval", "clustering", "pair_classification",
                           "reranking"), required=False)
    label_names: Optional[Dict[str, str]] = key(required=False)  # a label as stored -> the name to use
    prompts: Optional[List[str]] = key(required=False)  # the recommended prompts (template=auto takes them)
    references: Optional[List[Any]] = key(required=False)  # published figures, each checked as a ReferenceConfig
    references_data: Optional[str] = key(required=False)  # the data they were measured on: hub_id@revision (or path)
    mteb_tasks: Optional[Dict[str, str]] = key(required=False)  # kind -> the mteb task of these clips (protocol=mteb)


@dataclass
class ReferenceConfig:
    """A published figure for one checkpoint on this dataset, where it was published and under which protocol
    (conf/dataset/*.yaml `references:`). `folds` and `prompts` are the protocol's settings zsa-eval can set (folds
    null: every clip); `unsupported` says why zsa-eval cannot reproduce the protocol, when it cannot."""

    id: str = key()
    checkpoint: str = key()  # the hub id a run's model.name_or_path must equal
    metric: str = key()  # a metrics.json key: accuracy, t2a_recall_at_1, map, ...
    value: float = key()
    stderr: Optional[float] = key(at_least(0), required=False)  # the published standard error, if any
    interval: Optional[List[float]] = key(required=False)  # the published interval [low, high], if any
    protocol: str = key()  # clips and folds, prompt, sample rate, preprocessing, in short
    source: str = key()  # repository, path and commit (or page, or paper and table)
    weights: str = key(one_of("original", "conversion"))  # the weights measured: the authors' own, or converted
    folds: Optional[List[int]] = key(required=False)
    prompts: Optional[List[str]] = key(required=False)
    unsupported: Optional[str] = key(required=False)  # why zsa-eval cannot reproduce the protocol
    note: Optional[str] = key(required=False)  # what the source leaves unclear
    evaluation: Optional[Dict[str, Any]] = key(required=False)  # the run protocol measured: {name: zeroshot} (the
    # default) or a probe with the settings that define its figure, e.g. {name: few_shot, shots: 8, repeats: 10}
    mteb_task: Optional[str] = key(required=False)  # an MTEB result file's task_name: a figure of protocol=mteb,
    # measured by that mteb task's evaluator (its evaluation is then {name: mteb, mteb_task, mteb_version})
    mteb_version: Optional[str] = key(required=False)  # the mteb version the result file names (with mteb_task)
    data: Optional[str] = key(required=False)  # the clips it counts, as references_data names them (null: the
    # dataset's references_data); an mteb figure names the Hub copy and revision its result file names
    settings: Optional[Dict[str, Any]] = key(required=False)  # other run settings that define the figure, by config
    # path, e.g. {model.scoring: generate, template.answer_matching: mill, dataset.classes: [...] (in its order)}


@dataclass
class HubDatasetConfig(DatasetConfig):
    hub_id: str = key()
    split: str = key()
    revision: Optional[str] = key(required=False)
    audio_column: str = key()
    id_column: Optional[str] = key()  # null: items named by row number; retrieval: rows sharing an id are one clip
    caption_column: Optional[str] = key(required=False)  # retrieval: a caption, or a list of captions, per row
    id_basename: bool = key(required=False)  # items named by the file name in id_column (its folders dropped)
    instruction: Optional[str] = key(required=False)  # the catalog's recommended instruction (audio language models)


@dataclass
class FolderDatasetConfig(DatasetConfig):
    path: Optional[str] = key()


@dataclass
class LocalFolderConfig(FolderDatasetConfig):
    """A local folder zsa-eval lists itself (zsa_eval.data.listing): which files are audio, which links to follow."""

    follow_symlinks: bool = key(required=False)
    extensions: Optional[List[str]] = key(required=False)
    caption_column: Optional[str] = key(required=False)  # retrieval: the metadata column of the captions


@dataclass
class AudioFolderConfig(LocalFolderConfig):
    split_folder: Optional[str] = key(required=False)  # path/<split_folder>/<class>/...: the split to evaluate


@dataclass
class PairsFolderConfig(LocalFolderConfig):
    pairs_file: str = key()     # the CSV of pairs, in the folder: one row per pair
    first_column: str = key()   # its column of each pair's first file
    second_column: str = key()  # its column of each pair's second file


@dataclass
class RerankFolderConfig(LocalFolderConfig):
    queries_file: str = key()       # the CSV of queries, in the folder: one row per query
    query_column: str = key()       # its column of each query's file
    positives_column: str = key()   # its column of each query's positive files, joined by |
    candidates_column: str = key()  # its column of the files each query ranks, joined by | (empty: every document)


@dataclass
class MtebDatasetConfig(DatasetConfig):
    """dataset=mteb: an mteb task's data, loaded by mteb (zsa_eval.data.mteb_tasks)."""

    task_name: Optional[str] = key()  # the mteb task, e.g. CREMA_D
    path: Optional[str] = key()  # a local copy of the task's Hub dataset, in place of the Hub's
    mirror: Optional[str] = key()  # a folder of local copies named by Hub path (<mirror>/mteb/crema-d)
    hf_subsets: Optional[List[str]] = key()  # some of the task's subsets (languages); null: all
    benchmark: Optional[str] = key()  # the task as this mteb benchmark defines it (suite=maeb: MAEB(v1))
    caption_column: Optional[str] = key(required=False)  # retrieval: the items' column of captions


@dataclass
class SyntheticDatasetConfig(FolderDatasetConfig):
    clips_per_class: int = key(at_least(1))
    sample_rate: int = key(at_least(1))
    duration_s: float = key(ABOVE_ZERO)


@dataclass
class ModelConfig:
    _target_: str = "zsa_eval.models.load_model"  # a model file without _target_ uses the standard loader
    name: str = key()
    name_or_path: Optional[str] = key()  # null in model=auto until the user names a checkpoint
    revision: Optional[str] = key(required=False)
    trust_remote_code: bool = key(required=False)
    random_init: Optional[str] = key(one_of(*RANDOM_MODEL_KINDS), required=False)
    random_init_seed: int = key(required=False)
    max_seconds: float = key(ABOVE_ZERO, required=False)
    frame_pooling: str = key(one_of("max", "mean"), required=False)
    scoring: str = key(one_of("likelihood", "generate"), required=False)  # audio language models
    max_new_tokens: int = key(at_least(1), required=False)
    label_batch_size: int = key(at_least(1), required=False)
    short_clip_fusion: str = key(one_of("auto", "laion", "transformers"), required=False)  # fused CLAP
    int16_roundtrip: bool = key(required=False)  # CLAP: quantize clips as laion_clap's loader does
    laion_loader_length: bool = key(required=False)  # CLAP: resample to librosa.load's length, as laion_clap's loader
    tokenizer: Optional[str] = key(required=False)  # CLAP, laion_clap .pt files: the text tokenizer (hub id or folder)
    weights_file: Optional[str] = key(required=False)  # MS-CLAP: the .pth in name_or_path (a Hub repo or folder)
    prompts: Optional[List[str]] = key(required=False)  # the answer form template=auto prefers for this model
    family: Optional[str] = key(required=False)  # a registered family or package.module:Class; null: the checkpoint's
    options: Optional[Dict[str, Any]] = key(required=False)  # the family's own keys (model.options.*)
    fingerprint: Optional[str] = key(required=False)  # the user's name for the weights (the cache key's)


@dataclass
class TemplateConfig:
    name: str = key()
    prompts: List[str] = key()
    instruction: Optional[str] = key(required=False)  # what an audio language model is asked about each clip
    answer_matching: str = key(one_of(*ANSWER_MATCHING), required=False)  # generate: how an answer names a class
    # (zsa_eval/answers.py; a template without it: zsa)
    max_new_tokens: Optional[int] = key(ABOVE_ZERO, required=False)  # generate: the answer length the template's
    # protocol generates (a run with another model.max_new_tokens is warned)


@dataclass
class LongAudioConfig:
    """How clips longer than the model's window are heard (zsa_eval.long_audio); each policy takes the keys
    POLICY_KEYS names."""

    name: str = key(one_of(*POLICIES))
    window_s: Optional[float] = key(ABOVE_ZERO, required=False)
    hop_s: Optional[float] = key(ABOVE_ZERO, required=False)
    max_windows: Optional[int] = key(at_least(1), required=False)


PROBE_CLASSIFIERS = ("logistic_regression", "prototype", "text_prototype")


@dataclass
class ProtocolConfig:
    """What a run does with the clips' embeddings: zero-shot scoring against the prompts, or a probe trained on
    some clips' embeddings and tested on others (zsa_eval.tasks.registry picks the task from it)."""

    name: str = key()
    folder: str = key()  # the default output_dir's folder below <dataset>/<model>/


@dataclass
class ProbeConfig(ProtocolConfig):
    """What both probes share: the test items (official folds, else a seeded split) and the solver."""

    split_fraction: Optional[float] = key(BELOW_ONE)  # a dataset without folds: the test share; null refuses it
    seed: int = key()
    max_iter: int = key(at_least(1))


@dataclass
class LinearProbeConfig(ProbeConfig):
    c_grid: List[float] = key(EACH_ABOVE_ZERO)
    inner_folds: int = key(at_least(2))


@dataclass
class FewShotConfig(ProbeConfig):
    shots: int = key(at_least(0))  # 0 only with text_init (check_protocol)
    repeats: int = key(at_least(1))
    classifier: str = key(one_of("auto", *PROBE_CLASSIFIERS))
    c: float = key(ABOVE_ZERO)
    text_init: bool = key()
    text_init_weight: float = key(ABOVE_ZERO)


MTEB_KINDS = ("zeroshot", "classification", "multilabel", "retrieval_a2t", "retrieval_t2a", "clustering",
              "pair_classification", "reranking")  # zsa_eval.tasks.mteb_kinds.KINDS


@dataclass
class MtebProtocolConfig(ProtocolConfig):
    """mteb's own evaluation of the dataset's kind (zsa_eval.tasks.mteb_protocol)."""

    mteb_task: Optional[str] = key()  # null: dataset=mteb's, the dataset's mteb_tasks for the kind, or one built
    kind: Optional[str] = key(one_of(*MTEB_KINDS))  # null: the dataset's natural kind
    similarity: str = key(one_of("auto", "cosine", "dot"))  # auto: the family's (families.mteb_model.mteb_similarity)


PROTOCOL_SCHEMAS = {"zeroshot": ProtocolConfig, "linear_probe": LinearProbeConfig, "few_shot": FewShotConfig,
                    "mteb": MtebProtocolConfig}

DATASET_SCHEMAS = {
    "zsa_eval.data.load_hub_dataset": HubDatasetConfig,
    "zsa_eval.data.load_esc50_folder": LocalFolderConfig,
    "zsa_eval.data.load_audiofolder": AudioFolderConfig,
    "zsa_eval.data.load_synthetic": SyntheticDatasetConfig,
    "zsa_eval.data.load_mteb_task": MtebDatasetConfig,
    "zsa_eval.data.load_pairs_folder": PairsFolderConfig,
    "zsa_eval.data.load_rerank_folder": RerankFolderConfig,
}

ConfigStore.instance().store(name=SCHEMA_NAME, node=RunConfig)
