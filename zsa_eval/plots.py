"""Figures: a run's confusion matrix or per-class AP bars, a sweep's model x template heat map, a model x dataset
heat map, two runs' per-class recall, a retrieval run's recall at k."""

from __future__ import annotations

import io
import textwrap
import warnings

import numpy as np
import pandas as pd


TITLE_CHARACTERS_PER_INCH = 9  # a panel title (a long dataset path, say) wraps to the figure's width


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(figure) -> bytes:
    """Render and close a (constrained-layout) figure; glyphs missing from the font are drawn as boxes."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        figure.savefig(buffer, format="png", dpi=110)
    pyplot().close(figure)
    return buffer.getvalue()


def confusion_png(confusion: pd.DataFrame) -> bytes:
    """Row-normalized confusion matrix as PNG (a last "(no match)" column when answers matched no class); the figure
    grows with the class count so 50 labels stay legible."""
    counts = confusion.to_numpy(dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n_classes = len(confusion)
    side = max(5.0, 0.28 * n_classes + 3)
    figure, axes = pyplot().subplots(figsize=(side + 1.5, side), layout="constrained")
    image = axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    font = 10 if n_classes <= 20 else 7
    axes.set_xticks(np.arange(len(confusion.columns)), confusion.columns, rotation=90, fontsize=font)
    axes.set_yticks(np.arange(n_classes), confusion.index, fontsize=font)
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    axes.set_title("Confusion matrix (rows normalized to recall)")
    if n_classes <= 20:
        for row, column in zip(*np.nonzero(counts)):
            axes.text(column, row, f"{rates[row, column]:.2f}", ha="center", va="center", fontsize=8,
                      color="white" if rates[row, column] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    return png_bytes(figure)


def accuracy_heatmap_png(grids: dict[str, pd.DataFrame]) -> bytes:
    """A score (accuracy, or mAP for a multi-label dataset) by model (rows) x template (columns), one panel per
    dataset stacked top to bottom, titled by its key; each grid cell is one leaderboard row."""
    label_width = 0.075 * max(len(label) for grid in grids.values() for label in grid.index)
    width = max(6.0, label_width + 1.3 * max(grid.shape[1] for grid in grids.values()) + 2.5)
    heights = [grid.shape[0] + 2.2 for grid in grids.values()]
    figure, panels = pyplot().subplots(len(grids), 1, figsize=(width, max(3.6, 0.5 * sum(heights) + 0.5)), squeeze=False,
                                       layout="constrained", gridspec_kw={"height_ratios": heights})
    for axes, (name, grid) in zip(panels[:, 0], grids.items()):
        values = grid.to_numpy(dtype=float)
        image = axes.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        axes.set_xticks(np.arange(grid.shape[1]), grid.columns, rotation=20, ha="right")
        axes.set_yticks(np.arange(grid.shape[0]), grid.index)
        for (row, column), value in np.ndenumerate(values):
            if np.isfinite(value):
                axes.text(column, row, f"{value:.3f}", ha="center", va="center",
                          color="black" if value > 0.6 else "white")
        axes.set_title(textwrap.fill(name, max(30, int(width * TITLE_CHARACTERS_PER_INCH))), fontsize=11)
    figure.supxlabel("template #prompts hash")
    figure.supylabel("model | what else varies")
    figure.colorbar(image, ax=panels[:, 0].tolist(), shrink=0.6)
    return png_bytes(figure)


def recall_bars_png(per_class: pd.DataFrame, name_a: str, name_b: str, metric: str = "recall") -> bytes:
    """A per-class metric of two runs side by side (`per_class`: label, <metric>_a, <metric>_b; recall, or AP), the
    legend under the figure, outside the bars."""
    positions = np.arange(len(per_class))
    width = max(6.0, 0.35 * len(per_class) + 2)
    figure, axes = pyplot().subplots(figsize=(width, 5.0), layout="constrained")
    wrapped = [textwrap.fill(name, int(width * 11)) for name in (name_a, name_b)]  # one legend entry a row, no wider
    axes.bar(positions - 0.2, per_class[f"{metric}_a"], width=0.4, label=wrapped[0])
    axes.bar(positions + 0.2, per_class[f"{metric}_b"], width=0.4, label=wrapped[1])
    axes.set_xticks(positions, per_class["label"], rotation=90, fontsize=8 if len(per_class) > 20 else 10)
    axes.set_xlim(-0.6, len(per_class) - 0.4)
    axes.set_ylim(0, 1.02)
    axes.set_ylabel(metric)
    axes.set_title(f"Per-class {metric}")
    figure.legend(loc="outside lower center", ncols=1)
    return png_bytes(figure)


def recall_at_k_png(curves: dict[str, np.ndarray], title: str) -> bytes:
    """Recall at k (k = 1, 2, ...) of each retrieval direction (`curves`: name -> recall at k = 1..len), with the
    reported k (1, 5, 10) marked and labelled."""
    figure, axes = pyplot().subplots(figsize=(6.5, 4.2), layout="constrained")
    for name, recall in curves.items():
        ks = np.arange(1, len(recall) + 1)
        line, = axes.plot(ks, recall, drawstyle="steps-post", label=name)
        marked = [k for k in (1, 5, 10) if k <= len(recall)]
        axes.scatter(marked, recall[np.array(marked) - 1], color=line.get_color(), zorder=3)
        for k in marked:
            axes.annotate(f"{recall[k - 1]:.3f}", (k, recall[k - 1]), textcoords="offset points", xytext=(4, -12),
                          fontsize=8, color=line.get_color())
    axes.set_xscale("log")
    longest = max(len(recall) for recall in curves.values())
    ticks = [k for k in (1, 2, 5, 10, 20, 50, 100) if k <= longest]
    axes.set_xticks(ticks, [str(k) for k in ticks])
    axes.minorticks_off()
    axes.set_xlabel("k (candidates retrieved)")
    axes.set_ylabel("recall at k")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.set_title(title)
    axes.legend(loc="lower right")
    return png_bytes(figure)


def ap_bars_png(per_class: pd.DataFrame) -> bytes:
    """Per-class average precision (`per_class`: label, support, ap), best first, one horizontal bar per class
    with clips, its support beside it; classes without clips are counted in the title. The figure grows with the
    class count so 200 classes stay legible."""
    counted = per_class[per_class["support"] > 0].sort_values(["ap", "label"], ascending=[True, False])
    height = max(3.0, 0.16 * len(counted) + 1.6)
    figure, axes = pyplot().subplots(figsize=(7.5, height), layout="constrained")
    positions = np.arange(len(counted))
    axes.barh(positions, counted["ap"], color="tab:blue")
    font = 9 if len(counted) <= 40 else 6
    axes.set_yticks(positions, [f"{label} ({support})" for label, support in zip(counted["label"], counted["support"])],
                    fontsize=font)
    axes.set_ylim(-0.6, len(counted) - 0.4)
    axes.set_xlim(0, 1)
    axes.set_xlabel("average precision")
    mean_ap = counted["ap"].mean()
    axes.axvline(mean_ap, color="black", linestyle="--", linewidth=1, label=f"mAP {mean_ap:.3f}")
    axes.legend(loc="lower right")
    left_out = len(per_class) - len(counted)
    axes.set_title(f"Per-class AP, {len(counted)} classes with clips (support)"
                   + (f"; {left_out} without clips left out" if left_out else ""))
    return png_bytes(figure)


def dataset_heatmap_png(table: pd.DataFrame, metrics: list[str]) -> bytes:
    """Model rows x dataset columns (`table`: values 0-1, NaN where a model has no run), each column's header
    naming its metric (`metrics`, one per column: accuracy | mAP)."""
    values = table.to_numpy(dtype=float)
    width = max(6.0, 0.075 * max(len(str(label)) for label in table.index) + 1.1 * table.shape[1] + 2.5)
    figure, axes = pyplot().subplots(figsize=(width, max(3.0, 0.5 * table.shape[0] + 2.2)), layout="constrained")
    image = axes.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    headers = [f"{column}\n{metric}" for column, metric in zip(table.columns, metrics)]
    axes.set_xticks(np.arange(table.shape[1]), headers, rotation=30, ha="right")
    axes.set_yticks(np.arange(table.shape[0]), table.index)
    for (row, column), value in np.ndenumerate(values):
        axes.text(column, row, f"{value:.3f}" if np.isfinite(value) else "-", ha="center", va="center",
                  color="black" if np.isfinite(value) and value > 0.6 else "white" if np.isfinite(value) else "gray")
    axes.set_title("Zero-shot results by dataset (accuracy: single-label; mAP: multi-label)")
    figure.colorbar(image, ax=axes, shrink=0.8)
    return png_bytes(figure)
