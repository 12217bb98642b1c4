"""What a fine-tune did, measured on people and photos it never trained on, original model against new.

For each set of pairs the report gives the seed system's table (mean cosine similarity and mean L2
distance of same-person and of different-person pairs) and verification figures: accuracy at the
model's own decision threshold (0.6 for dlib's model; a fine-tuned model is rescaled so that 0.6 is
its recalibrated threshold too), accuracy at the best threshold for these very pairs (an upper
bound, for reference), TAR at FAR = 1e-3 and 1e-2 and ROC AUC. On an LFW pairs file (the guard
against forgetting) the LFW protocol's k-fold accuracy is given as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceid.eval.metrics import accuracy_at, best_threshold, kfold_accuracy, roc_auc, tar_at_far
from faceid.plain_json import json_default
from faceid.thresholds import DLIB_DISTANCE_THRESHOLD


@dataclass
class Pairs:
    first: np.ndarray  # indices into an embedding matrix
    second: np.ndarray
    same: np.ndarray  # bool
    folds: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.same)

    @property
    def positives(self) -> int:
        return int(self.same.sum())

    @property
    def negatives(self) -> int:
        return int((~self.same).sum())


def make_pairs(
    labels: np.ndarray,
    rng: np.random.Generator,
    max_positives_per_person: int = 50,
    negatives: int = 20_000,
    probes: np.ndarray | None = None,
) -> Pairs:
    """Every same-person pair (at most ``max_positives_per_person`` per person) and random different-person pairs.

    With ``probes`` (a boolean mask) each pair has a probe as its first member: the pairs measure
    new photos of known people against the photos the model was trained on.
    """
    labels = np.asarray(labels)
    n = len(labels)
    probe_mask = np.ones(n, bool) if probes is None else np.asarray(probes, bool)
    first: list[int] = []
    second: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        candidates = [
            (int(a), int(b))
            for i, a in enumerate(members)
            for b in (members if probes is not None else members[i + 1 :])
            if a != b and probe_mask[a] and (probes is not None or probe_mask[b])
        ]
        if len(candidates) > max_positives_per_person:
            keep = rng.choice(len(candidates), max_positives_per_person, replace=False)
            candidates = [candidates[k] for k in sorted(keep)]
        first.extend(a for a, _ in candidates)
        second.extend(b for _, b in candidates)
    positives = len(first)
    probe_indices = np.flatnonzero(probe_mask)
    wanted = negatives
    seen: set[tuple[int, int]] = set()
    attempts = 0
    while wanted > 0 and attempts < 20 and len(np.unique(labels)) > 1:
        a = probe_indices[rng.integers(0, len(probe_indices), wanted * 2)]
        b = rng.integers(0, n, wanted * 2)
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            key = (min(x, y), max(x, y))
            if labels[x] == labels[y] or key in seen:
                continue
            seen.add(key)
            first.append(x)
            second.append(y)
            wanted -= 1
            if wanted == 0:
                break
        attempts += 1
    same = np.zeros(len(first), bool)
    same[:positives] = True
    return Pairs(np.array(first, np.int64), np.array(second, np.int64), same)


def pair_distances(embeddings: np.ndarray, pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """(L2 distance, cosine similarity) of each pair."""
    a, b = embeddings[pairs.first], embeddings[pairs.second]
    distances = np.linalg.norm(a - b, axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosines = np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
    return distances, cosines


def pair_metrics(embeddings: np.ndarray, pairs: Pairs, threshold: float = DLIB_DISTANCE_THRESHOLD) -> dict[str, float]:
    distances, cosines = pair_distances(embeddings, pairs)
    same = pairs.same
    best = best_threshold(distances, same)
    result = {
        "mean_cosine_positive": float(cosines[same].mean()) if same.any() else float("nan"),
        "mean_cosine_negative": float(cosines[~same].mean()) if (~same).any() else float("nan"),
        "mean_l2_positive": float(distances[same].mean()) if same.any() else float("nan"),
        "mean_l2_negative": float(distances[~same].mean()) if (~same).any() else float("nan"),
        "threshold": float(threshold),
        "accuracy": accuracy_at(distances, same, threshold),
        "best_threshold": best,
        "accuracy_at_best_threshold": accuracy_at(distances, same, best),
        "tar_at_far_1e3": tar_at_far(distances, same, 1e-3)[0],
        "tar_at_far_1e2": tar_at_far(distances, same, 1e-2)[0],
        "roc_auc": roc_auc(distances, same),
    }
    if pairs.folds is not None and len(np.unique(pairs.folds)) > 1:
        kfold = kfold_accuracy(distances, same, pairs.folds)
        result["kfold_accuracy"] = kfold.mean
    return result


def compare(original: np.ndarray, new: np.ndarray, pairs: Pairs) -> dict[str, Any]:
    """Both models on the same pairs; each at its own threshold (0.6: the new model is rescaled to it)."""
    return {
        "pairs": len(pairs),
        "positive_pairs": pairs.positives,
        "negative_pairs": pairs.negatives,
        "original": pair_metrics(original, pairs),
        "new": pair_metrics(new, pairs),
    }


# -- rendering --------------------------------------------------------------------------------------

_SEED_ROWS = [
    ("mean cosine similarity, same person", "mean_cosine_positive", "{:.4f}"),
    ("mean cosine similarity, different people", "mean_cosine_negative", "{:.4f}"),
    ("mean L2 distance, same person", "mean_l2_positive", "{:.4f}"),
    ("mean L2 distance, different people", "mean_l2_negative", "{:.4f}"),
]
_METRIC_ROWS = [
    ("accuracy at the model's threshold", "accuracy", "{:.2%}"),
    ("accuracy at the best threshold for these pairs", "accuracy_at_best_threshold", "{:.2%}"),
    ("best threshold for these pairs", "best_threshold", "{:.3f}"),
    ("TAR at FAR = 1e-3", "tar_at_far_1e3", "{:.2%}"),
    ("TAR at FAR = 1e-2", "tar_at_far_1e2", "{:.2%}"),
    ("ROC AUC", "roc_auc", "{:.5f}"),
    ("k-fold accuracy (LFW protocol)", "kfold_accuracy", "{:.2%}"),
]


def comparison_table(section: dict[str, Any]) -> list[str]:
    original, new = section["original"], section["new"]
    lines = ["| | original | new | change |", "|---|---:|---:|---:|"]
    for label, key, form in _SEED_ROWS + _METRIC_ROWS:
        if key not in original:
            continue
        a, b = original[key], new[key]
        change = b - a
        delta = f"{100 * change:+.2f} pts" if "%" in form else ("{:+" + form[2:]).format(change)
        lines.append(f"| {label} | {form.format(a)} | {form.format(b)} | {delta} |")
    return lines


SECTION_TITLES = {
    "heldout_people": "People held out from training",
    "heldout_photos": "New photos of trained people (held out from training)",
    "guard": "Guard against forgetting: pairs file, people not trained on",
}


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Fine-tune {report.get('version') or report.get('run', '')}".rstrip(), ""]
    data = report["data"]
    lines.append(
        f"Data: {data['source']} ({data['layout']}): {data['people']} people, {data['photos']} photos; "
        f"{data['people_dropped_fewer_than_two_photos']} people with fewer than two photos dropped."
    )
    split = report["split"]
    lines.append(
        f"Trained on {split['train_people']} people / {split['train_photos']} photos; held out "
        f"{split['heldout_people']} people and {split['heldout_photos']} photos of trained people."
    )
    settings = report["settings"]
    lines.append(
        f"Loss {settings['loss']}, trained stages '{settings['trainable']}', {report['training']['steps']} steps of "
        f"{report['training']['batch_size']}, lr {settings['learning_rate']:g}, {settings['views']} views per photo."
    )
    calibration = report["calibration"]
    lines.append(
        f"Recalibration: threshold {calibration['raw_threshold']:.3f}, from {calibration['source']}; "
        f"descriptors scaled by {calibration['scale']:.4f} so that 0.6 is the threshold."
    )
    timing = report["timing"]
    lines.append("Time: " + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in timing.items()) + ".")
    for key, title in SECTION_TITLES.items():
        section = report.get(key)
        if not section:
            continue
        lines += ["", f"## {title}", ""]
        lines.append(
            f"{section['pairs']} pairs ({section['positive_pairs']} same person, {section['negative_pairs']} different)"
            + (f"; {section['note']}" if section.get("note") else "")
            + "."
        )
        lines.append("")
        lines += comparison_table(section)
    return "\n".join(lines) + "\n"


def save_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "report.json", folder / "report.md"
    json_path.write_text(json.dumps(report, indent=2, default=json_default) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path
