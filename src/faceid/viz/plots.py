"""PNG files drawn with matplotlib (Agg backend, imported on first use: nothing else in faceid needs it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from faceid.errors import ModelUnavailableError
from faceid.viz.curves import Curves, PairScores, probit
from faceid.viz.maps import UNKNOWN_COLOR, EmbeddingMap

log = logging.getLogger(__name__)

DPI = 120
# A legend with more people than this would cover the map; the colours still tell them apart.
LEGEND_MAX_PEOPLE = 24


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ModelUnavailableError("the PNG files need matplotlib (pip install matplotlib)") from None
    # Agg draws to files without a display; set before pyplot is first imported in this process.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _draw_map(ax: Any, emap: EmbeddingMap, title: str, legend: bool = True) -> None:
    colors = emap.colors
    point_colors = [colors.get(int(p), "#888888") for p in emap.person_ids]
    size = 28 if len(emap.x) < 300 else 12 if len(emap.x) < 3000 else 5
    ax.scatter(emap.x, emap.y, c=point_colors, s=size, alpha=0.85, linewidths=0)
    if len(emap.unknown_x):
        ax.scatter(
            emap.unknown_x,
            emap.unknown_y,
            marker="x",
            c=UNKNOWN_COLOR,
            s=max(size * 1.6, 18),
            linewidths=1.2,
            label=f"unknown events ({len(emap.unknown_x)})",
        )
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if legend and 0 < len(emap.people) <= LEGEND_MAX_PEOPLE:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], marker="o", linestyle="", color=p["color"], label=f"{p['name']} ({p['faces']})")
            for p in emap.people
        ]
        if len(emap.unknown_x):
            handles.append(Line2D([], [], marker="x", linestyle="", color=UNKNOWN_COLOR, label="unknown events"))
        ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    elif len(emap.unknown_x):
        ax.legend(fontsize=8, loc="best")


def _map_title(emap: EmbeddingMap) -> str:
    explained = emap.details.get("explained_variance")
    extra = f", PC1+PC2 {100 * sum(explained):.0f}% of variance" if explained else ""
    return (
        f"{emap.method.upper()} map: {len(emap.x)} faces of {len(emap.people)} people{extra}\n"
        f"model {emap.model_id}; x = unknown event"
    )


def write_map_png(emap: EmbeddingMap, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 7))
    _draw_map(ax, emap, _map_title(emap))
    return _save(fig, path)


def write_histogram_png(scores: PairScores, curves: Curves, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    edges = curves.histogram_edges
    width = np.diff(edges)
    ax.bar(
        edges[:-1],
        curves.histogram_same,
        width=width,
        align="edge",
        alpha=0.55,
        color="#2a7f3f",
        label=f"same person ({len(scores.same):,} pairs)",
    )
    ax.bar(
        edges[:-1],
        curves.histogram_different,
        width=width,
        align="edge",
        alpha=0.55,
        color="#c0392b",
        label=f"different people ({len(scores.different):,} pairs)",
    )
    if scores.threshold is not None:
        rates = curves.at_threshold
        detail = ""
        if rates:
            detail = (
                f": {100 * rates.get('false_accept_rate', 0):.2f}% of different pairs accepted, "
                f"{100 * rates.get('false_reject_rate', 0):.2f}% of same pairs rejected"
            )
        ax.axvline(
            scores.threshold,
            color="#111111",
            linewidth=1.6,
            label=f"threshold {scores.threshold:.3f} ({scores.threshold_label}){detail}",
        )
    for (name, value), style in zip(scores.markers.items(), ("--", ":", "-."), strict=False):
        ax.axvline(value, color="#555555", linewidth=1, linestyle=style, label=f"{name}: {value:.3f}")
    ax.set_xlabel(scores.unit + " (lower = more alike)")
    ax.set_ylabel("density")
    ax.set_title(f"Pair scores ({scores.source})", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    return _save(fig, path)


def write_roc_png(scores: PairScores, curves: Curves, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    positive = curves.far > 0
    # Steps, not straight lines: between two thresholds the ROC moves right (FAR) or up (TAR), never diagonally,
    # and a point of the curve is the top of each vertical step (see curves._sampled).
    ax.plot(
        curves.far[positive],
        curves.tar[positive],
        color="#1f4fd1",
        linewidth=1.6,
        drawstyle="steps-post",
        label=f"AUC {curves.auc:.5f}",
    )
    rates = curves.at_threshold
    if "false_accept_rate" in rates and "false_reject_rate" in rates:
        far, tar = rates["false_accept_rate"], 1 - rates["false_reject_rate"]
        # A log axis has no 0: a threshold that accepts no different pair sits at the curve's left end.
        left = float(curves.far[positive].min()) if positive.any() else 1e-6
        ax.plot(
            [max(far, left)],
            [tar],
            "o",
            color="#111111",
            clip_on=False,
            label=f"threshold {scores.threshold:.3f}: FAR {100 * far:.3g}%, TAR {100 * tar:.3g}%",
        )
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    low = min([float(curves.tar[positive].min())] if positive.any() else [0.0])
    if "false_reject_rate" in rates:
        low = min(low, 1 - rates["false_reject_rate"])
    ax.set_ylim(max(0.0, low - 0.02), 1.005)
    ax.grid(True, which="both", alpha=0.3)
    at = ", ".join(f"TAR {100 * v:.2f}% @ FAR {k}" for k, v in curves.tar_at_far.items())
    ax.set_title(f"ROC ({scores.source}; {scores.unit})\n{at}", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def write_det_png(scores: PairScores, curves: Curves, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    x_floor, y_floor, top = 1e-5, 1e-4, 0.5
    ax.plot(
        probit(curves.far),
        probit(curves.fnmr),
        color="#8e44ad",
        linewidth=1.6,
        drawstyle="steps-post",
        label=f"EER {100 * curves.eer:.2f}%",
    )
    rates = curves.at_threshold
    if "false_accept_rate" in rates and "false_reject_rate" in rates:
        fmr, fnmr = rates["false_accept_rate"], rates["false_reject_rate"]
        # A rate of 0 has no place on a probit axis: the point sits on the axis edge and the label says so.
        shown = probit(np.array([max(fmr, x_floor), max(fnmr, y_floor)]))
        ax.plot(
            [shown[0]],
            [shown[1]],
            "o",
            color="#111111",
            clip_on=False,
            label=f"threshold {scores.threshold:.3f}: FMR {100 * fmr:.3g}%, FNMR {100 * fnmr:.3g}%",
        )
    ticks = np.array([1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
    labels = ["0.001%", "0.01%", "0.1%", "1%", "5%", "20%", "50%"]
    ax.set_xticks(probit(ticks), labels)
    ax.set_yticks(probit(ticks), labels)
    ax.set_xlim(*probit(np.array([x_floor, top])))
    ax.set_ylim(*probit(np.array([y_floor, top])))
    ax.set_xlabel("false match rate (normal deviate scale)")
    ax.set_ylabel("false non-match rate")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"DET ({scores.source}; {scores.unit})", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def write_compare_png(before: EmbeddingMap, after: EmbeddingMap, titles: tuple[str, str], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5))
    _draw_map(axes[0], before, titles[0], legend=False)
    _draw_map(axes[1], after, titles[1], legend=True)
    return _save(fig, path)
