"""The tasks by name: a dataset config's `task` key and the run's `protocol` (or a run's metrics.json `task` and
`protocol`) pick one of these."""

from __future__ import annotations

from omegaconf import DictConfig

from zsa_eval.errors import UserError
from zsa_eval.tasks import Task, classification, clustering, pair_classification, reranking, retrieval, tagging
from zsa_eval.tasks.few_shot import FewShotTask
from zsa_eval.tasks.linear_probe import LinearProbeTask, MultilabelProbeTask
from zsa_eval.tasks.mteb_protocol import MtebTask
from zsa_eval.tasks.probing import ProbeTask

ZEROSHOT = "zeroshot"  # the protocol of every task's own scoring (and of a run whose metrics.json names none)
MTEB = "mteb"  # mteb's own evaluation of any task's kind (zsa_eval.tasks.mteb_protocol)
TASKS: dict[str, Task] = {module.TASK.name: module.TASK for module in (classification, tagging, retrieval, clustering,
                                                                      pair_classification, reranking)}
PROBES: dict[tuple[str, str], type[ProbeTask]] = {
    (classification.TASK.name, "linear_probe"): LinearProbeTask,
    (tagging.TASK.name, "linear_probe"): MultilabelProbeTask,
    (classification.TASK.name, "few_shot"): FewShotTask,
}
CANNOT_PROBE = {  # why a dataset's task has no probe of a protocol, and what to run instead
    (retrieval.TASK.name, "linear_probe"): "it has captions, not classes to learn: use protocol=zeroshot",
    (retrieval.TASK.name, "few_shot"): "it has captions, not classes to draw shots of: use protocol=zeroshot",
    (tagging.TASK.name, "few_shot"): "its clips carry label sets, so shots of a class are not defined: use "
                                     "protocol=linear_probe (one-vs-rest) or protocol=zeroshot",
    **{(module.TASK.name, probe): f"it is measured on the audio embeddings as they are ({module.TASK.kind}), with "
                                  "nothing to train: use protocol=zeroshot"
       for module in (clustering, pair_classification, reranking) for probe in ("linear_probe", "few_shot")},
}


def task_named(name: str, protocol: str = ZEROSHOT, settings: DictConfig | None = None,
               dataset: str | None = None) -> Task:
    """The task of a dataset config's `task` key under `protocol` (or of a run's metrics.json), in one line when
    there is none; `settings`: the run's protocol config, which a probe checks the dataset with; `dataset`: its
    name, for the message."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    if protocol == ZEROSHOT:
        return TASKS[name]
    if protocol == MTEB:
        return MtebTask(TASKS[name], settings)
    if (name, protocol) not in PROBES:
        reason = CANNOT_PROBE.get((name, protocol), f"protocol {protocol!r} is not one zsa-eval knows")
        what = f"dataset={dataset} (task {name})" if dataset else f"a {name} dataset"
        raise UserError(f"protocol={protocol} cannot evaluate {what}: {reason}")
    return PROBES[(name, protocol)](settings)


def task_for(cfg: DictConfig) -> Task:
    """The task of a run: its dataset's task under its protocol."""
    return task_named(cfg.dataset.get("task", classification.TASK.name), cfg.protocol.name, cfg.protocol,
                      cfg.dataset.name)
