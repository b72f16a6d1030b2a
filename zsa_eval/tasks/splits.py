"""The probes' test items and inner folds (zsa_eval.tasks.probing uses them): each official fold in turn, or one
seeded split of a dataset without folds, stratified by class, keeping each recording's clips on one side
(dataset.group_column); the cross-validation inside a training side that chooses C; and the warnings a selection's
folds and recordings call for. A split depends only on the items (ids, labels, folds, recordings) and the seed,
never on which clips a run skipped or on the model, so two runs of one dataset and seed test the same items."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.model_selection import (GroupKFold, GroupShuffleSplit, KFold, StratifiedGroupKFold, StratifiedKFold,
                                     train_test_split)

from zsa_eval.data import AudioDataset
from zsa_eval.errors import UserError
from zsa_eval.text import counted


SPLIT_FOLD = "test"  # the test fold of a dataset without folds (its training side has none)
TRAINING_FOLD = "train"  # a fold so named (a train split, as dataset=mteb's train/test tasks have) is never tested


def test_fold_name(fold) -> str:
    """`test fold 3`, or for a dataset without folds `the seeded split` (whose test side is its one test fold)."""
    return "the seeded split" if fold == SPLIT_FOLD else f"test fold {fold}"


@dataclass(frozen=True)
class Sides:
    """A probe run's test items: `test_fold[i]`, the fold in which dataset item i is tested (None: a training clip
    only, on the training side of a split), the test folds in order, and how they were made (metrics.json
    `split`)."""

    test_fold: np.ndarray
    folds: list
    record: dict

    def masks(self, fold, test_fold: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) of one test fold over items whose test folds are `test_fold`: the test fold against every
        other item; a clip id on both sides is refused."""
        test = test_fold == fold
        train = self.training_side(fold, test_fold)
        shared = sorted(set(item_ids[train].tolist()) & set(item_ids[test].tolist()))
        if shared:
            raise UserError(f"clip id {shared[0]!r} is on both sides of {test_fold_name(fold)} ({len(shared)} such ids): "
                            "a clip's test must never see it in training; give every clip one id and one fold "
                            "(dataset.fold_column), then run again")
        return train, test

    def training_side(self, fold, test_fold: np.ndarray) -> np.ndarray:
        """The items a classifier tested on `fold` trains on: every other item, or with a train split (official
        splits) the train split's items alone."""
        if self.record.get("train") == TRAINING_FOLD:
            return pd.isna(test_fold)
        return test_fold != fold


def plain(value):
    """A fold as metrics.json writes it: numpy numbers as Python ones."""
    return value.item() if isinstance(value, np.generic) else value


def official_folds(dataset: AudioDataset, protocol: str) -> Sides:
    """Each official fold tested in turn: the dataset (or its `dataset.folds` selection) needs two or more, and
    every item one."""
    folds = dataset.items["fold"]
    if folds.isna().any():
        raise UserError(f"{int(folds.isna().sum())} of the {len(folds)} items of dataset={dataset.name} have no fold: "
                        f"protocol={protocol} tests each fold against the others; give every item a fold")
    distinct = [plain(fold) for fold in sorted(pd.unique(folds))]
    if len(distinct) < 2:
        raise UserError(f"protocol={protocol} tests each official fold with a classifier trained on the others, and "
                        f"this selection of dataset={dataset.name} has one fold ({distinct[0]}): select two or more "
                        "(dataset.folds=null: all)")
    if TRAINING_FOLD in distinct:
        return train_split(folds, [fold for fold in distinct if fold != TRAINING_FOLD])
    return Sides(folds.to_numpy(dtype=object), distinct,
                 {"kind": "official folds", "folds": distinct, "n_folds": len(distinct),
                  "description": f"{len(distinct)} official folds"})


def train_split(folds: pd.Series, tested: list) -> Sides:
    """Official train and test splits: the train split only trained on, each other split tested with a classifier
    trained on the train split alone (a split is never trained on while another is tested)."""
    test_fold = folds.to_numpy(dtype=object).copy()
    test_fold[test_fold == TRAINING_FOLD] = None
    return Sides(test_fold, tested,
                 {"kind": "official splits", "folds": tested, "n_folds": len(tested), "train": TRAINING_FOLD,
                  "description": f"trained on the {TRAINING_FOLD} split, tested on {', '.join(map(str, tested))}"})


def recordings(items: pd.DataFrame) -> np.ndarray | None:
    """Each item's recording (dataset.group_column; an item without one is its own), or None when the dataset names
    none."""
    if "group" not in items or items["group"].isna().all():
        return None
    return items["group"].where(items["group"].notna(), "item:" + items["item_id"].astype(str)).to_numpy(dtype=str)


def seeded_split(dataset: AudioDataset, protocol: str, fraction: float | None, seed: int, stratified: bool) -> Sides:
    """One test fold: `fraction` of each class (of the items, when not `stratified`), drawn with `seed` from the
    items in item-id order (so the split does not depend on the order a loader lists them in); a dataset that names
    its items' recordings keeps each recording's clips on one side (about `fraction` tested)."""
    if fraction is None:
        raise UserError(f"dataset={dataset.name} has no folds and protocol.split_fraction is null: set "
                        f"protocol.split_fraction=0.2 (a seeded split, 20% of each class tested), or choose a dataset "
                        f"with folds for protocol={protocol}")
    order = np.argsort(dataset.items["item_id"].to_numpy(dtype=str), kind="stable")
    labels = dataset.items["label"].to_numpy()[order] if stratified else None
    groups = recordings(dataset.items)
    try:
        if groups is None:
            _, tested = train_test_split(order, test_size=fraction, random_state=seed, stratify=labels)
        else:
            tested = order[grouped_test_rows(labels, groups[order], fraction, seed)]
    except ValueError as error:
        raise UserError(f"protocol.split_fraction={fraction} cannot split the {len(order)} items of dataset="
                        f"{dataset.name} ({str(error).splitlines()[0]}): use more clips of each class, or another "
                        "protocol.split_fraction") from error
    test_fold = np.full(len(order), None, dtype=object)
    test_fold[tested] = SPLIT_FOLD
    share = "of each class " if stratified else ""
    kept = {} if groups is None else {"recordings_kept_whole": True,
                                      "classes_not_tested": untested_classes(dataset.items, test_fold)}
    whole = "" if groups is None else ", recordings kept whole"
    return Sides(test_fold, [SPLIT_FOLD],
                 {"kind": "seeded split", "test_fraction": fraction, "seed": seed, "stratified": stratified, **kept,
                  "n_test": len(tested), "n_train": len(order) - len(tested),
                  "description": f"a seeded split ({fraction:.0%} {share}tested{whole}, seed {seed})"})


def grouped_test_rows(labels: np.ndarray | None, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The rows of one seeded test side that takes whole groups: a share near `fraction` of the groups, of each
    class where `labels` are given (the first of round(1 / fraction) stratified group folds)."""
    if labels is None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(splitter.split(groups, groups=groups))[1]
    folds = max(2, round(1 / fraction))
    with warnings.catch_warnings():  # "the least populated class has fewer members than n_splits": said our way
        warnings.simplefilter("ignore", UserWarning)
        return next(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(groups, labels, groups))[1]


def untested_classes(items: pd.DataFrame, test_fold: np.ndarray) -> list[str]:
    """The classes of the items that a test side holds no clip of (a split that keeps recordings whole can leave a
    class of few recordings all on the training side)."""
    tested = set(items["label"][pd.notna(test_fold)])
    return [name for name in pd.unique(items["label"]) if name not in tested]


def recordings_across_folds(items: pd.DataFrame) -> list[str]:
    """Warnings for recordings (dataset.group_column) whose clips lie in more than one official fold: a probe
    trained on one of those folds has heard the recording when it tests the other."""
    groups = recordings(items)
    if groups is None or items["fold"].isna().all():
        return []
    folds = pd.DataFrame({"group": groups, "fold": items["fold"].astype(str)}).groupby("group")["fold"].unique()
    spanning = folds[folds.map(len) > 1]
    if spanning.empty:
        return []
    shown = ", ".join(f"{name!r} (folds {', '.join(sorted(values))})" for name, values in spanning.head(3).items())
    return [f"{counted(len(spanning), 'recording')} of this selection {'has' if len(spanning) == 1 else 'have'} "
            f"clips in more than one official fold ({shown}{', ...' if len(spanning) > 3 else ''}): a probe trained on "
            "one of those folds has heard them when it tests the other, so its figures are optimistic; give each "
            "recording's clips one fold (dataset.fold_column), or name no recordings (dataset.group_column=null) to "
            "accept it (metrics.json: warnings)"]


def probe_sides(dataset: AudioDataset, protocol: DictConfig, stratified: bool) -> Sides:
    """The official folds when the dataset has them, else the seeded split."""
    if dataset.has_folds:
        return official_folds(dataset, protocol.name)
    return seeded_split(dataset, protocol.name, protocol.split_fraction, protocol.seed, stratified)


def inner_splits(targets: np.ndarray, groups: np.ndarray, n_folds: int, seed: int, stratified: bool,
                 recorded: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cross-validation inside a training side that chooses C: whole official folds (`groups`) grouped into
    `n_folds` (or fewer, one fold per group) when it holds two or more, so that clips of one recording never
    straddle it; else `n_folds` seeded folds, stratified by class (as many as the smallest class allows), each
    recording's clips in one of them when the items' recordings are known (`recorded`)."""
    distinct = pd.unique(groups[pd.notna(groups)]) if groups is not None else []
    if len(distinct) >= 2:
        return list(GroupKFold(n_splits=min(n_folds, len(distinct))).split(targets, groups=groups))
    if not stratified:
        if recorded is not None:
            return list(GroupKFold(n_splits=min(n_folds, len(np.unique(recorded)))).split(targets, groups=recorded))
        return list(KFold(n_folds, shuffle=True, random_state=seed).split(targets))
    smallest = int(np.bincount(targets)[np.unique(targets)].min())
    if smallest < 2:
        raise UserError("a class has a single clip on a training side, too few to cross-validate C: give "
                        "protocol.c_grid a single value (no cross-validation), or use more clips of each class")
    if recorded is not None:
        return list(StratifiedGroupKFold(min(n_folds, smallest), shuffle=True, random_state=seed)
                    .split(targets, targets, recorded))
    return list(StratifiedKFold(min(n_folds, smallest), shuffle=True, random_state=seed).split(targets, targets))
