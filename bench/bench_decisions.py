"""Right answers out of the box, measured side by side in one run on faces-dev (issue: decisions).

    python bench/bench_decisions.py [--write]

For the previous default (dlib's descriptor through the photo pipeline, its built-in calibration) and the
new one (dlib's descriptor fused with SFace's, its built-in calibration), on the same draws:

1. Pairs (LFW protocol, k-fold accuracy and TAR at FAR 1e-3) per pipeline, and the mixed case: the first
   photo of each pair through the photo pipeline (enrolled), the second through the video pipeline (a camera).
2. Identification with one photo enrolled (galleries of 50, 200 and every eligible person of the measured
   half): the decision rule as a new install has it. The built-in calibration is made from one half of the
   people (by name hash) and measured on the other half (galleries, probes, strangers), then the halves swap;
   the previous default's rule needs no data. Observed FPIR (strangers named), DIR at that rule, wrong names.
3. Track templates: pseudo-tracks of faces-dev people with 4+ photos (enrolled with their first photo through
   the photo pipeline; photos 2-6 through the video pipeline are the track's frames, equal quality): the
   track named by a majority of frames against named by the mean of its frames' descriptors.

Descriptors come from the labelled-set cache (faceid.store.calibrate.describe_photos): the first run
describes every photo with each pipeline (tens of minutes on 2 cores), later runs take seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from common import command_line, dataset, machine, write_results_section
from faceid.eval.metrics import kfold_accuracy, tar_at_far
from faceid.eval.pairs import read_pairs
from faceid.store.calibrate import LabelledFaces, describe_photos, folder_photos
from faceid.store.identify_bench import _draw, _people_half
from faceid.store.match import ambiguous_pairs, centroids, cohort_means, normalise, pairwise_distances
from faceid.store.shipped import _people_subset, build_calibration
from faceid.thresholds import UNCALIBRATED_CENTROID_THRESHOLD
from faceid.vision.analyzer import photo_analyzer, video_analyzer

SIZES: tuple[int | str, ...] = (50, 200, "all")
DRAWS = 5
TRACK_FRAMES = 5


def _aligned(faces: LabelledFaces, paths: list[str]) -> np.ndarray:
    index = {p: i for i, p in enumerate(faces.paths)}
    return faces.embeddings[[index[p] for p in paths]]


def pairs_section(root: Any, rows: list[tuple[str, LabelledFaces, LabelledFaces]]) -> dict[str, Any]:
    """LFW-protocol figures per (label, first photo's descriptors, second photo's descriptors), on the pairs
    every pipeline described."""
    pairs, _ = read_pairs(root / "pairs.txt")
    have = set.intersection(*(set(f.paths) & set(s.paths) for _, f, s in rows))
    pairs = [p for p in pairs if p.first in have and p.second in have]
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    out = {}
    for label, first, second in rows:
        a = _aligned(first, [p.first for p in pairs])
        b = _aligned(second, [p.second for p in pairs])
        distances = np.linalg.norm(a - b, axis=1)
        out[label] = {
            "pairs": len(pairs),
            "kfold_accuracy": kfold_accuracy(distances, same, folds).mean,
            "tar_at_far_1e-3": tar_at_far(distances, same, 1e-3)[0],
        }
    return out


def _rates(scores: np.ndarray, truth: np.ndarray, genuine: int, threshold: float) -> dict[str, float]:
    best = scores.argmin(axis=1)
    best_score = scores[np.arange(len(scores)), best]
    named = best_score <= threshold
    ambiguous = ambiguous_pairs(scores, threshold)
    return {
        "observed_fpir": float(named[genuine:].mean()),
        "dir": float(np.mean(named[:genuine] & ~ambiguous[:genuine] & (best[:genuine] == truth))),
        "wrong_names": float(np.mean(named[:genuine] & ~ambiguous[:genuine] & (best[:genuine] != truth))),
        "ambiguous": float(ambiguous.mean()),
    }


def identification_section(gallery_faces: LabelledFaces, probe_faces: LabelledFaces, model_id: str, calibrated: bool):
    halves = [{p for p in set(gallery_faces.people.tolist()) if _people_half(p) == h} for h in (0, 1)]
    results: dict[str, list[dict[str, float]]] = {}
    for made_from, measured in ((halves[0], halves[1]), (halves[1], halves[0])):
        calibration = (
            build_calibration(_people_subset(gallery_faces, made_from), model_id, source="bench")
            if calibrated
            else None
        )
        g = _people_subset(gallery_faces, measured)
        p = _people_subset(probe_faces, measured)
        groups = g.by_person()
        probe_index = {path: i for i, path in enumerate(p.paths)}
        eligible = sorted(x for x, idx in groups.items() if len(idx) > 1)
        singles = sorted(x for x, idx in groups.items() if len(idx) == 1)
        for size in SIZES:
            for seed in range(1 if size == "all" else DRAWS):
                people, enrolled, owners, probes, truth = _draw(groups, eligible, size, seed, 1, 10)
                probe_paths = [g.paths[i] for i in probes] + [g.paths[groups[s][0]] for s in singles]
                keep = [k for k, path in enumerate(probe_paths) if path in probe_index]
                vectors = p.embeddings[[probe_index[probe_paths[k]] for k in keep]]
                genuine = sum(1 for k in keep if k < len(probes))
                _, centres = centroids(g.embeddings[enrolled], owners)
                distances = pairwise_distances(vectors, centres)
                if calibration is not None:
                    assert calibration.cohort is not None
                    scores = normalise(
                        distances, cohort_means(vectors, calibration.cohort), cohort_means(centres, calibration.cohort)
                    )
                    threshold = calibration.threshold_for(len(people))
                else:
                    scores, threshold = distances, UNCALIBRATED_CENTROID_THRESHOLD
                truth_kept = truth[[k for k in keep if k < len(probes)]]
                row = _rates(scores, truth_kept, genuine, threshold)
                row["people"] = len(people)
                results.setdefault(str(size), []).append(row)
    return {size: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} for size, rows in results.items()}


COHORTS = (
    ("photos: one real face per person (cannot ship)", "photos", 1000),
    ("one Gaussian over the population, 10,000 draws", "gaussian", 10_000),
    ("mixture, 1,000 draws", "mixture", 1000),
    ("mixture, 10,000 draws (shipped)", "mixture", 10_000),
)


def cohort_section(photo: LabelledFaces, model_id: str) -> dict[str, Any]:
    """The background cohort of the built-in calibration, by kind: DIR at the strangers' own 1% point (what
    the cohort is for) and the observed FPIR of the calibrated threshold, on people it was not made from."""
    from functools import partial

    import faceid.store.shipped as shipped
    from faceid.store.identify_bench import evaluate_shipped_calibration

    out = {}
    original = shipped.build_calibration
    try:
        for label, kind, size in COHORTS:
            shipped.build_calibration = partial(original, cohort_kind=kind, cohort_size=size)
            result = evaluate_shipped_calibration(photo, model_id, SIZES, DRAWS, progress=False)
            out[label] = {
                k: {m: v[m] for m in ("dir_at_fpir_0.01", "observed_fpir")} for k, v in result["sizes"].items()
            }
    finally:
        shipped.build_calibration = original
    return out


def camera_section(photo: LabelledFaces, video: LabelledFaces, model_id: str) -> dict[str, Any]:
    """A camera's own calibration (faceid.store.camera) through a real store: a calibration made (as it ships)
    from one half of the people; 200 people of the other half enrolled through the photo pipeline; that half's
    strangers (single-photo people) through the video pipeline, half of them as the camera's unknown tracks and
    half probed. The camera's scale, and the share of probed strangers named with the model's threshold and with
    the camera's; both halves, one after the other."""
    import tempfile

    from faceid.store.store import Store

    halves = [{p for p in set(photo.people.tolist()) if _people_half(p) == h} for h in (0, 1)]
    video_index = {p: i for i, p in enumerate(video.paths)}
    runs = []
    for made_from, measured in ((halves[0], halves[1]), (halves[1], halves[0])):
        calibration = build_calibration(_people_subset(photo, made_from), model_id, source="bench")
        groups = _people_subset(photo, measured).by_person()
        sub = _people_subset(photo, measured)
        eligible = sorted(x for x, idx in groups.items() if len(idx) > 1)[:200]
        singles = [x for x, idx in groups.items() if len(idx) == 1 and sub.paths[idx[0]] in video_index]
        learn, probe = singles[0::2], singles[1::2]
        with tempfile.TemporaryDirectory() as folder, Store(folder, model_id=model_id, index="exact") as store:
            store.save_calibration(calibration)
            for person in eligible:
                store.enroll_embeddings(person, sub.embeddings[groups[person][:1]])
            for person in learn:
                vector = video.embeddings[video_index[sub.paths[groups[person][0]]]]
                store.record_event(
                    person_id=None, source="cam", model_id=model_id, metadata={"template": vector.tolist()}
                )
            state = store.camera_calibration("cam")
            named = {"model": 0, "camera": 0}
            for person in probe:
                vector = video.embeddings[video_index[sub.paths[groups[person][0]]]]
                named["model"] += int(store.identify_embedding(vector, top_k=2).known)
                named["camera"] += int(store.identify_embedding(vector, top_k=2, camera="cam").known)
        runs.append(
            {
                **state.to_dict(),
                "people": len(eligible),
                "probed_strangers": len(probe),
                "fpir_model_threshold": named["model"] / len(probe),
                "fpir_camera_threshold": named["camera"] / len(probe),
            }
        )
    return {"runs": runs}


def templates_section(photo: LabelledFaces, video: LabelledFaces, model_id: str) -> dict[str, Any]:
    """Pseudo-tracks through the built-in calibration made from the other half, per half, averaged."""
    halves = [{p for p in set(photo.people.tolist()) if _people_half(p) == h} for h in (0, 1)]
    video_index = {p: i for i, p in enumerate(video.paths)}
    totals = {"tracks": 0, "vote_named_right": 0, "template_named_right": 0, "vote_wrong": 0, "template_wrong": 0}
    for made_from, measured in ((halves[0], halves[1]), (halves[1], halves[0])):
        calibration = build_calibration(_people_subset(photo, made_from), model_id, source="bench")
        assert calibration.cohort is not None
        g = _people_subset(photo, measured)
        groups = g.by_person()
        people = sorted(x for x, idx in groups.items() if len(idx) >= 4)
        _, centres = centroids(g.embeddings[[groups[x][0] for x in people]], np.arange(len(people)))
        centre_means = cohort_means(centres, calibration.cohort)
        threshold = calibration.threshold_for(len(people))

        def decide(
            vectors: np.ndarray,
            centres: np.ndarray = centres,
            cohort: np.ndarray = calibration.cohort,
            centre_means: np.ndarray = centre_means,
            threshold: float = threshold,
        ) -> np.ndarray:
            scores = normalise(pairwise_distances(vectors, centres), cohort_means(vectors, cohort), centre_means)
            best = scores.argmin(axis=1)
            named = scores[np.arange(len(scores)), best] <= threshold
            return np.where(named & ~ambiguous_pairs(scores, threshold), best, -1)

        for k, person in enumerate(people):
            frames = [g.paths[i] for i in groups[person][1 : 1 + TRACK_FRAMES] if g.paths[i] in video_index]
            if not frames:
                continue
            vectors = video.embeddings[[video_index[f] for f in frames]]
            per_frame = decide(vectors)
            labels, counts = np.unique(per_frame, return_counts=True)
            winner = labels[counts.argmax()] if counts.max() * 2 > len(per_frame) else -1
            template = decide(vectors.mean(axis=0, keepdims=True))[0]
            totals["tracks"] += 1
            totals["vote_named_right"] += int(winner == k)
            totals["vote_wrong"] += int(winner not in (-1, k))
            totals["template_named_right"] += int(template == k)
            totals["template_wrong"] += int(template not in (-1, k))
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write the section of bench/RESULTS.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    root = dataset("faces-dev")
    paths = folder_photos(root)
    progress = sys.stderr.isatty()
    # The previous default described photos with dlib's descriptor alone; the new one fuses SFace's. Video
    # follows the store's model, so a camera's descriptors are fused too (without mirror averaging).
    pipelines = {
        "dlib photo": photo_analyzer(second_opinion=None),
        "dlib video": video_analyzer(),
        "fused photo": photo_analyzer(second_opinion="sface"),
        "fused video": video_analyzer(second_opinion="sface"),
    }
    faces = {label: describe_photos(a, root, paths, progress=progress) for label, a in pipelines.items()}
    dlib_model, model = pipelines["dlib photo"].model_id, pipelines["fused photo"].model_id
    photo, video = faces["fused photo"], faces["fused video"]
    report = {
        "pairs": pairs_section(
            root,
            [
                ("dlib, video pipeline", faces["dlib video"], faces["dlib video"]),
                ("dlib, photo pipeline (previous default)", faces["dlib photo"], faces["dlib photo"]),
                ("dlib + SFace, photo pipeline (new default)", photo, photo),
                ("dlib + SFace, photo-enrolled vs video probe", photo, video),
            ],
        ),
        "identification": {
            "previous default: dlib, photo pipeline, built-in calibration": identification_section(
                faces["dlib photo"], faces["dlib photo"], dlib_model, True
            ),
            "new default: dlib + SFace, photo pipeline, built-in calibration": identification_section(
                photo, photo, model, True
            ),
            "new default, mixed: photo-enrolled, video probes": identification_section(photo, video, model, True),
        },
        "track_templates": templates_section(photo, video, model),
        "cohorts": cohort_section(photo, model),
        "camera": camera_section(photo, video, model),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))
    lines = [
        f"Command: `{command_line()}` ({time.strftime('%Y-%m-%d')}, {machine()}); faces-dev, "
        f"{len(paths)} photos. Built-in calibration measured on people it was not made from (two halves by name hash).",
        "",
        "| pairs (LFW protocol) | k-fold accuracy | TAR @ FAR 1e-3 |",
        "|---|---|---|",
        *[
            f"| {k} | {100 * v['kfold_accuracy']:.2f}% | {100 * v['tar_at_far_1e-3']:.2f}% |"
            for k, v in report["pairs"].items()
        ],
        "",
        "| identification, 1 photo enrolled | gallery | observed FPIR | DIR at the rule | wrong names | ambiguous |",
        "|---|---|---|---|---|---|",
    ]
    for label, sizes in report["identification"].items():
        for size, row in sizes.items():
            lines.append(
                f"| {label} | {size} ({row['people']:.0f}) | {100 * row['observed_fpir']:.2f}% "
                f"| {100 * row['dir']:.1f}% "
                f"| {100 * row['wrong_names']:.2f}% | {100 * row['ambiguous']:.2f}% |"
            )
    t = report["track_templates"]
    lines += [
        "",
        f"Track templates ({t['tracks']} pseudo-tracks of up to {TRACK_FRAMES} video-pipeline frames, enrolled through "
        f"the photo pipeline): named right by the frames' majority {100 * t['vote_named_right'] / t['tracks']:.1f}%, "
        f"by the template {100 * t['template_named_right'] / t['tracks']:.1f}%; named wrongly "
        f"{100 * t['vote_wrong'] / t['tracks']:.2f}% and {100 * t['template_wrong'] / t['tracks']:.2f}%.",
    ]
    lines += [
        "",
        "Built-in calibration by kind of cohort (dlib + SFace, photo pipeline; made from one half of the people, "
        "measured on the other):",
        "",
        "| cohort | DIR @ FPIR 1% (50 / 200 / all) | observed FPIR at the calibrated threshold (50 / 200 / all) |",
        "|---|---|---|",
    ]
    for label, sizes in report["cohorts"].items():
        dirs = " / ".join(f"{100 * v['dir_at_fpir_0.01']:.1f}%" for v in sizes.values())
        fpirs = " / ".join(f"{100 * v['observed_fpir']:.2f}%" for v in sizes.values())
        lines.append(f"| {label} | {dirs} | {fpirs} |")
    for c in report["camera"]["runs"]:
        lines += [
            "",
            f"A camera's own calibration (one half): {c['people']} people enrolled through the photo pipeline, "
            f"{c['strangers']} strangers through the video pipeline as the camera's unknown tracks ({c['left_out']} "
            f"left out for lying close to someone enrolled): median best score {c['typical_score']} against "
            f"{c['expected_score']} expected, threshold x {c['scale']}; {c['probed_strangers']} other strangers named "
            f"at the model's threshold {100 * c['fpir_model_threshold']:.2f}%, at the camera's "
            f"{100 * c['fpir_camera_threshold']:.2f}%.",
        ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_results_section("decisions", "## Decisions out of the box\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
