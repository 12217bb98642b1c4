"""``faceid bench visitors``: faces-dev replayed as a camera would see it, through a real store's inbox.

Protocol (faces-dev layout ``ROOT/<person>/<person>_NNNN.jpg``, descriptors cached as for ``bench identify``):

* The people are split in two halves by a hash of their name (as :func:`faceid.store.identify_bench.
  evaluate_shipped_calibration` does): a calibration made as it ships from one half decides for a replay of the
  other half, then the halves swap. So no one replayed was used to make the rule that clusters them.
* The replay: every photo of the people with at least ``min_photos`` photos (the regulars), shuffled into one time
  order, mixed with the one photo of each single-photo person (passers-by), each recorded as an unknown event with
  its descriptor as the template, through :meth:`Store.record_event` (SQLite, temporary), which clusters it.
* Clustering: BCubed precision and recall of the visitors against the true people (passers-by included), the
  clicks a user needs to name everyone (a name per visitor of a regular, a split per visitor holding others;
  one per regular is the ideal), and events per second.
* Naming: a second replay of the first ``named_share`` of the stream; each visitor whose majority is a regular is
  named after them (as a new person, or added to the person already named). The rest of the stream is then
  identified by the store: rank-1 and DIR at the calibrated threshold of the regulars named, and the share of
  strangers (passers-by, regulars never named, ``held out`` regulars) named, side by side with a store where each
  of the same people was enrolled from one photo (their first in the stream).
* Corrections: regulars held out of the replay are strangers who come back. The first of their photos that the
  store names as someone is corrected ("not this person"); the rest of their photos are identified before and
  after, with the named people's own probes, for several margins.
* Scale: the whole stream of both halves, repeated with a small jitter (stated in the report) up to ``scale_events``
  unknown events, replayed through the store for events per second and BCubed at that size.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from faceid.errors import BadInputError
from faceid.models.runtime import one_blas_thread
from faceid.store.calibrate import LabelledFaces, describe_photos, folder_photos
from faceid.store.match import Calibration
from faceid.thresholds import VISITOR_ENROLL_CAP

log = logging.getLogger(__name__)

MODEL = "visitors-bench"
CAMERAS = ("gate", "garage", "door")
MARGINS = (-0.05, 0.0, 0.05, 0.1)


def _half(name: str) -> int:
    from faceid.store.identify_bench import _people_half

    return _people_half(name)


def _held_out(name: str, share: float) -> bool:
    return int(hashlib.sha256(("held-out|" + name).encode()).hexdigest(), 16) % 1000 < share * 1000


def bcubed(labels: Sequence[Any], truth: Sequence[Any]) -> tuple[float, float]:
    """BCubed precision and recall of a clustering ``labels`` against ``truth`` (item by item, averaged)."""
    clusters, classes = Counter(labels), Counter(truth)
    both = Counter(zip(labels, truth, strict=True))
    precision = float(np.mean([both[(c, t)] / clusters[c] for c, t in zip(labels, truth, strict=True)]))
    recall = float(np.mean([both[(c, t)] / classes[t] for c, t in zip(labels, truth, strict=True)]))
    return precision, recall


def clicks_to_name(labels: Sequence[Any], truth: Sequence[str], regulars: set[str]) -> dict[str, int]:
    """Clicks to name every regular: one name (new or existing person) per visitor whose majority is a regular, one
    split per visitor for each regular that is not its majority (the split-out events named in the same click as
    they are picked), and one split per visitor holding passers-by besides its majority."""
    members: dict[Any, Counter[str]] = {}
    for label, person in zip(labels, truth, strict=True):
        members.setdefault(label, Counter())[person] += 1
    names = splits = 0
    for counts in members.values():
        majority = counts.most_common(1)[0][0]
        if majority in regulars:
            names += 1
        others = [p for p in counts if p != majority]
        splits += sum(1 for p in others if p in regulars) + int(any(p not in regulars for p in others))
    return {"names": names, "splits": splits, "total": names + splits, "people": len(regulars)}


def _stream(groups: dict[str, list[int]], min_photos: int, seed: int) -> tuple[list[int], set[str]]:
    regulars = {p for p, idx in groups.items() if len(idx) >= min_photos}
    items = [i for p in sorted(regulars) for i in groups[p]]
    items += [idx[0] for p, idx in sorted(groups.items()) if len(idx) == 1]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    return [items[k] for k in order], regulars


def _replay(
    store: Any,
    vectors: np.ndarray,
    start: datetime,
    progress: bool,
    label: str,
    qualities: Sequence[float | None] | None = None,
) -> tuple[list[int], float]:
    """Record each descriptor as an unknown event (one a minute, cameras in turn): the event ids and events/s."""
    ids = []
    started = time.perf_counter()
    for k, vector in enumerate(tqdm(vectors, desc=label, disable=not progress, leave=False, unit="event")):
        quality = 1.0 if qualities is None else qualities[k]
        meta: dict[str, Any] = {"template": [round(float(v), 6) for v in vector]}
        if quality is not None:
            meta["quality"] = {"score": quality}
        ids.append(
            store.record_event(
                person_id=None,
                source=CAMERAS[k % len(CAMERAS)],
                time=start + timedelta(minutes=k),
                model_id=MODEL,
                metadata=meta,
            ).id
        )
    elapsed = time.perf_counter() - started
    return ids, len(ids) / max(elapsed, 1e-9)


def _open_store(folder: str, calibration: Calibration) -> Any:
    from faceid.store.store import Store

    store = Store(folder, model_id=MODEL, index="exact")
    store.save_calibration(calibration)
    return store


def _identify_all(store: Any, vectors: np.ndarray) -> list[Any]:
    return [store.identify_embedding(v, top_k=2) for v in vectors]


def _rates(answers: list[Any], truth: list[str], known: set[str], names: dict[int, str]) -> dict[str, float]:
    genuine = [k for k, t in enumerate(truth) if t in known]
    strangers = [k for k, t in enumerate(truth) if t not in known]
    rank1 = [bool(answers[k].candidates) and names.get(answers[k].candidates[0].person_id) == truth[k] for k in genuine]
    named_right = [
        answers[k].person is not None and names.get(answers[k].person.person_id) == truth[k] for k in genuine
    ]
    wrong = [answers[k].person is not None and names.get(answers[k].person.person_id) != truth[k] for k in genuine]
    return {
        "genuine_probes": len(genuine),
        "strangers": len(strangers),
        "rank1": round(float(np.mean(rank1)) if rank1 else 0.0, 4),
        "dir_at_threshold": round(float(np.mean(named_right)) if named_right else 0.0, 4),
        "wrong_name_rate": round(float(np.mean(wrong)) if wrong else 0.0, 4),
        "observed_fpir": round(
            float(np.mean([answers[k].person is not None for k in strangers])) if strangers else 0.0, 4
        ),
    }


def replay_half(
    faces: LabelledFaces,
    calibration: Calibration,
    *,
    min_photos: int = 3,
    seed: int = 0,
    named_share: float = 0.6,
    held_out_share: float = 0.25,
    enroll_cap: int = VISITOR_ENROLL_CAP,
    progress: bool = True,
) -> dict[str, Any]:
    """Clustering, naming and corrections on one half's people (``faces``), decided by ``calibration``."""
    from faceid.store.visitors import inbox

    groups = faces.by_person()
    regular_names = {p for p, idx in groups.items() if len(idx) >= min_photos}
    held = {p for p in regular_names if _held_out(p, held_out_share)}
    replayed = {p: idx for p, idx in groups.items() if p not in held}
    stream, regulars = _stream(replayed, min_photos, seed)
    truth = [str(faces.people[i]) for i in stream]
    vectors = faces.embeddings[stream]
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    result: dict[str, Any] = {"people": len(groups), "regulars": len(regulars), "held_out": len(held)}

    # 1. The whole stream, clustered as it arrives.
    with tempfile.TemporaryDirectory() as folder, _open_store(folder, calibration) as store:
        ids, rate = _replay(store, vectors, start, progress, "replay")
        found = inbox(store).visitor_of(ids)
        labels = [found.get(e, -e) for e in ids]
    precision, recall = bcubed(labels, truth)
    clicks = clicks_to_name(labels, truth, regulars)
    result["clustering"] = {
        "events": len(ids),
        "visitors": len(set(labels)),
        "true_people": len(set(truth)),
        "bcubed_precision": round(precision, 4),
        "bcubed_recall": round(recall, 4),
        "clicks": clicks,
        "clicks_per_regular": round(clicks["total"] / max(len(regulars), 1), 3),
        "events_per_second": round(rate, 1),
    }

    # 2. Name the visitors of the first part, identify the rest (and the held-out regulars' photos).
    cut = int(len(stream) * named_share)
    with tempfile.TemporaryDirectory() as folder, _open_store(folder, calibration) as store:
        ids, _ = _replay(store, vectors[:cut], start, progress, "replay to name")
        box = inbox(store)
        found = box.visitor_of(ids)
        members: dict[int, list[str]] = {}
        for k, event_id in enumerate(ids):
            members.setdefault(found[event_id], []).append(truth[k])
        named: dict[str, int] = {}
        name_clicks = 0
        for visitor_id, people in sorted(members.items()):
            majority = Counter(people).most_common(1)[0][0]
            if majority not in regulars:
                continue
            if majority in named:
                box.name(visitor_id, person=named[majority], cap=enroll_cap)
            else:
                named[majority] = box.name(visitor_id, majority, cap=enroll_cap)["person_id"]
            name_clicks += 1
        by_id = {v: k for k, v in named.items()}
        probes = list(range(cut, len(stream)))
        probe_truth = [truth[k] for k in probes]
        answers = _identify_all(store, vectors[probes])
        after_naming = _rates(answers, probe_truth, set(named), by_id)
        # Corrections: held-out regulars come back; the first photo named as someone is corrected. Measured with the
        # calibration's own rule, and again with a lenient one (10% of strangers named), where it happens more.
        held_photos = {p: groups[p] for p in sorted(held)}
        context = (faces, vectors, probes, probe_truth, named, by_id)
        corrections = {"target_fpir_0.01": _corrections(store, held_photos, answers, context)}
        lenient = _lenient(calibration)
        store.save_calibration(lenient)
        _clear_negatives(store)
        lenient_answers = _identify_all(store, vectors[probes])
        corrections["target_fpir_0.1"] = _corrections(store, held_photos, lenient_answers, context)
        store.save_calibration(calibration)
        result["corrections"] = corrections
        result["naming"] = {
            "named_share_of_stream": named_share,
            "enroll_cap": enroll_cap,
            "people_named": len(named),
            "name_clicks": name_clicks,
            "after_naming_visitors": after_naming,
        }
    # Side by side: the same people, each enrolled from their first photo in the stream.
    with tempfile.TemporaryDirectory() as folder, _open_store(folder, calibration) as store:
        first: dict[str, int] = {}
        for k in range(cut):
            first.setdefault(truth[k], k)
        single_ids: dict[int, str] = {}
        for person in sorted(named):
            single_ids[store.enroll_embeddings(person, vectors[first[person]][None, :]).id] = person
        answers = _identify_all(store, vectors[probes])
        result["naming"]["single_photo_enrollment"] = _rates(answers, probe_truth, set(named), single_ids)
    return result


def _corrections(
    store: Any, held_photos: dict[str, list[int]], answers: list[Any], context: tuple[Any, ...]
) -> dict[str, Any]:
    """Each held-out regular's first photo named as someone is corrected ("not this person"); their later photos
    and the named people's own probes (``answers``: identified before any correction) are decided again with the
    negatives, for each margin."""
    from faceid.store.corrections import _negatives_of, accepts, invalidate, negative_scores, not_this_person

    faces, vectors, probes, probe_truth, named, by_id = context
    own_probes = [k for k, t in enumerate(probe_truth) if t in named]
    corrected: list[dict[str, Any]] = []
    before_rows: list[tuple[str, int, list[Any]]] = []
    for person, photos in held_photos.items():
        first_named = None
        for n, i in enumerate(photos):
            answer = store.identify_embedding(faces.embeddings[i], top_k=2)
            if answer.person is not None:
                first_named = (n, answer.person.person_id)
                break
        if first_named is None or first_named[0] == len(photos) - 1:
            continue
        n, wrong_person = first_named
        later = photos[n + 1 :]
        before_rows.append((person, wrong_person, _identify_all(store, faces.embeddings[later])))
        event = store.record_event(
            person_id=wrong_person,
            source="gate",
            model_id=MODEL,
            metadata={"template": [round(float(v), 6) for v in faces.embeddings[photos[n]]]},
        )
        not_this_person(store, event.id)
        corrected.append({"later": later, "person": wrong_person})
    own_before = [
        answers[k].person is not None and by_id.get(answers[k].person.person_id) == probe_truth[k] for k in own_probes
    ]
    matcher = store.matcher(MODEL)
    cohort = matcher.cohort
    margins: dict[str, dict[str, float]] = {}
    invalidate(store)

    def kept(answer: Any, vector: np.ndarray, margin: float) -> bool:
        if answer.person is None:
            return False
        found = _negatives_of(store, matcher, answer.person.person_id)
        if found is None:
            return True
        return accepts(answer.person.score, negative_scores(vector, found[0], cohort, found[1]), margin)

    stopped_before = sum(
        sum(a.person is not None and a.person.person_id == wrong for a in rows) for _, wrong, rows in before_rows
    )
    for margin in MARGINS:
        still = 0
        for (_, wrong, rows), item in zip(before_rows, corrected, strict=True):
            for answer, i in zip(rows, item["later"], strict=True):
                still += int(kept(answer, faces.embeddings[i], margin) and answer.person.person_id == wrong)
        own_right = [
            kept(answers[k], vectors[probes[k]], margin) and by_id.get(answers[k].person.person_id) == probe_truth[k]
            for k in own_probes
        ]
        affected = {item["person"] for item in corrected}
        affected_probes = [k for k in own_probes if named.get(probe_truth[k]) in affected]
        affected_right = [
            kept(answers[k], vectors[probes[k]], margin) and by_id.get(answers[k].person.person_id) == probe_truth[k]
            for k in affected_probes
        ]
        affected_before = [
            answers[k].person is not None and by_id.get(answers[k].person.person_id) == probe_truth[k]
            for k in affected_probes
        ]
        margins[f"{margin:g}"] = {
            "stranger_photos_named_as_corrected_person_before": int(stopped_before),
            "still_named_after": int(still),
            "dir_all_named_people_before": round(float(np.mean(own_before)) if own_before else 0.0, 4),
            "dir_all_named_people_after": round(float(np.mean(own_right)) if own_right else 0.0, 4),
            "corrected_people_probes": len(affected_probes),
            "dir_corrected_people_before": round(float(np.mean(affected_before)) if affected_before else 0.0, 4),
            "dir_corrected_people_after": round(float(np.mean(affected_right)) if affected_right else 0.0, 4),
        }
    return {"strangers_corrected": len(corrected), "by_margin": margins}


def _lenient(calibration: Calibration) -> Calibration:
    from dataclasses import replace

    return replace(calibration, target_fpir=0.1)


def _clear_negatives(store: Any) -> None:
    from sqlalchemy import delete

    from faceid.store.corrections import invalidate
    from faceid.store.inbox_schema import FaceNegative

    with store._write() as session:
        session.execute(delete(FaceNegative))
    invalidate(store)


def _scale(
    faces: LabelledFaces, calibration: Calibration, events: int, min_photos: int, seed: int, progress: bool
) -> dict[str, Any]:
    """The stream of every person (both halves), repeated with jitter to ``events`` unknown events."""
    from faceid.store.visitors import inbox

    stream, _ = _stream(faces.by_person(), min_photos, seed)
    base = faces.embeddings[stream]
    truth = [str(faces.people[i]) for i in stream]
    # Jitter: a tenth of the typical distance between two photos of one person, so a repeat is a new photo of
    # the same person, not a copy; repeats keep their person's label.
    rng = np.random.default_rng(seed)
    same = [np.linalg.norm(base[a] - base[b]) for a, b in _same_pairs(truth, rng, 500)]
    jitter = 0.1 * float(np.median(same)) if same else 0.0
    copies = int(np.ceil(events / len(base)))
    vectors = np.concatenate(
        [base + rng.normal(scale=jitter / np.sqrt(base.shape[1]), size=base.shape) * (c > 0) for c in range(copies)]
    ).astype(np.float32)[:events]
    labels_truth = (truth * copies)[:events]
    order = rng.permutation(len(vectors))
    vectors, labels_truth = vectors[order], [labels_truth[k] for k in order]
    with tempfile.TemporaryDirectory() as folder, _open_store(folder, calibration) as store:
        ids, rate = _replay(store, vectors, datetime(2026, 1, 1, tzinfo=timezone.utc), progress, "replay at scale")
        found = inbox(store).visitor_of(ids)
        started = time.perf_counter()
        recluster = inbox(store).recluster(MODEL)
        recluster_seconds = time.perf_counter() - started
    labels = [found.get(e, -e) for e in ids]
    precision, recall = bcubed(labels, labels_truth)
    return {
        "events": len(ids),
        "how": f"the stream of every person repeated {copies}x, each repeat jittered by {jitter:.4f} (a tenth of the "
        "median same-person distance), shuffled",
        "visitors": len(set(labels)),
        "bcubed_precision": round(precision, 4),
        "bcubed_recall": round(recall, 4),
        "events_per_second": round(rate, 1),
        "recluster_seconds": round(recluster_seconds, 2),
        "recluster": recluster,
    }


def _quality_gate(
    faces: LabelledFaces, calibration: Calibration, min_photos: int, seed: int, share: float, progress: bool
) -> dict[str, Any]:
    """The quality gate on poor faces (synthetic): a share of the events is made poor (its descriptor drawn towards
    the mean face, plus noise) and replayed with a poor quality score (the gate in force) and with no score (the
    gate cannot tell): BCubed of each, and of the clean replay."""
    from faceid.store.visitors import inbox

    stream, _ = _stream(faces.by_person(), min_photos, seed)
    base = faces.embeddings[stream].astype(np.float32)
    truth = [str(faces.people[i]) for i in stream]
    rng = np.random.default_rng(seed + 1)
    same = [np.linalg.norm(base[a] - base[b]) for a, b in _same_pairs(truth, rng, 500)]
    scale = float(np.median(same)) if same else 0.0
    poor = rng.random(len(base)) < share
    # A blurred or tiny face loses what tells people apart: its descriptor drifts towards the mean face (where it
    # is close to everyone), here half way, with noise of half a same-person distance on top.
    mean_face = base.mean(0)
    noisy = base.copy()
    noisy[poor] += 0.5 * (mean_face - base[poor])
    noisy[poor] += rng.normal(scale=0.5 * scale / np.sqrt(base.shape[1]), size=(int(poor.sum()), base.shape[1]))
    results: dict[str, Any] = {"events": len(base), "poor": int(poor.sum()), "noise": round(scale, 4)}
    runs = {
        "clean": (base, None),
        "poor, gate in force": (noisy, [0.02 if p else 1.0 for p in poor]),
        "poor, no quality known": (noisy, [None] * len(base)),
    }
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for label, (vectors, qualities) in runs.items():
        with tempfile.TemporaryDirectory() as folder, _open_store(folder, calibration) as store:
            ids, _ = _replay(store, vectors, start, progress, label, qualities)
            found = inbox(store).visitor_of(ids)
        labels = [found.get(e, -e) for e in ids]
        precision, recall = bcubed(labels, truth)
        good = [k for k in range(len(ids)) if not poor[k]]
        precision_good, recall_good = bcubed([labels[k] for k in good], [truth[k] for k in good])
        results[label] = {
            "bcubed_precision": round(precision, 4),
            "bcubed_recall": round(recall, 4),
            "good_faces_bcubed_precision": round(precision_good, 4),
            "good_faces_bcubed_recall": round(recall_good, 4),
        }
    return results


def _same_pairs(truth: list[str], rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    by: dict[str, list[int]] = {}
    for k, t in enumerate(truth):
        by.setdefault(t, []).append(k)
    multi = [v for v in by.values() if len(v) > 1]
    pairs = []
    for _ in range(count if multi else 0):
        group = multi[int(rng.integers(len(multi)))]
        a, b = rng.choice(len(group), 2, replace=False)
        pairs.append((group[int(a)], group[int(b)]))
    return pairs


def evaluate_visitors(
    faces: LabelledFaces,
    *,
    min_photos: int = 3,
    seed: int = 0,
    scale_events: int = 10_000,
    enroll_cap: int = VISITOR_ENROLL_CAP,
    progress: bool = True,
) -> dict[str, Any]:
    with one_blas_thread():
        report = _evaluate(faces, min_photos, seed, scale_events, enroll_cap, progress)
    report["blas_threads"] = "1"
    return report


def _evaluate(
    faces: LabelledFaces, min_photos: int, seed: int, scale_events: int, enroll_cap: int, progress: bool
) -> dict[str, Any]:
    from faceid.store.shipped import _people_subset, build_calibration

    people = sorted(set(faces.people.tolist()))
    halves = [{p for p in people if _half(p) == h} for h in (0, 1)]
    runs = []
    calibrations = []
    for made_from, measured in ((halves[0], halves[1]), (halves[1], halves[0])):
        calibration = build_calibration(
            _people_subset(faces, made_from), MODEL, source="bench: the other half of the people"
        )
        calibrations.append(calibration)
        runs.append(
            replay_half(
                _people_subset(faces, measured),
                calibration,
                min_photos=min_photos,
                seed=seed,
                enroll_cap=enroll_cap,
                progress=progress,
            )
        )

    def mean(path: Sequence[str]) -> float:
        values = []
        for run in runs:
            value: Any = run
            for key in path:
                value = value[key]
            values.append(float(value))
        return round(float(np.mean(values)), 4)

    report: dict[str, Any] = {
        "protocol": "calibration made as it ships from one half of the people (by name hash), replay of the other "
        "half; both ways, averaged",
        "bcubed_precision": mean(["clustering", "bcubed_precision"]),
        "bcubed_recall": mean(["clustering", "bcubed_recall"]),
        "clicks_per_regular": mean(["clustering", "clicks_per_regular"]),
        "events_per_second": mean(["clustering", "events_per_second"]),
        "halves": runs,
    }
    second_half = _people_subset(faces, halves[1])  # the people calibrations[0] was not made from
    report["quality_gate"] = _quality_gate(second_half, calibrations[0], min_photos, seed, 0.2, progress)
    if scale_events > 0:
        report["scale"] = _scale(faces, calibrations[0], scale_events, min_photos, seed, progress)
    return report


def run_visitor_benchmark(
    analyzer: object,
    root: Path,
    *,
    min_photos: int = 3,
    seed: int = 0,
    scale_events: int = 10_000,
    enroll_cap: int = VISITOR_ENROLL_CAP,
    use_cache: bool = True,
    progress: bool = True,
    describe: Callable[..., LabelledFaces] = describe_photos,
) -> dict[str, Any]:
    if min_photos < 2:
        raise BadInputError("--min-photos is at least 2 (a regular comes back)")
    started = time.perf_counter()
    faces = describe(analyzer, root, folder_photos(root), use_cache=use_cache, progress=progress)
    if enroll_cap < 1:
        raise BadInputError("--enroll-cap is at least 1")
    report = evaluate_visitors(
        faces, min_photos=min_photos, seed=seed, scale_events=scale_events, enroll_cap=enroll_cap, progress=progress
    )
    return {
        "command": "faceid " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("faceid") else None,
        "root": str(root),
        "model_id": str(getattr(analyzer, "model_id", "?")),
        "photos": len(faces.paths),
        **report,
        "seconds": round(time.perf_counter() - started, 1),
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"visitors on {report['root']} ({report['photos']} photos, model {report['model_id']}): {report['protocol']}",
        "",
        "| half | events | visitors | true people | BCubed P | BCubed R | clicks / regular | events/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, run in enumerate(report["halves"]):
        c = run["clustering"]
        lines.append(
            f"| {k + 1} | {c['events']} | {c['visitors']} | {c['true_people']} | {c['bcubed_precision']:.4f} "
            f"| {c['bcubed_recall']:.4f} | {c['clicks_per_regular']:.3f} | {c['events_per_second']:.0f} |"
        )
    lines.append(
        f"| mean | | | | {report['bcubed_precision']:.4f} | {report['bcubed_recall']:.4f} "
        f"| {report['clicks_per_regular']:.3f} | {report['events_per_second']:.0f} |"
    )
    lines += [
        "",
        "| half | enrolled from | people | rank-1 | DIR at threshold | wrong name | strangers named |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, run in enumerate(report["halves"]):
        n = run["naming"]
        for how, rates in (
            ("visitor (named once)", n["after_naming_visitors"]),
            ("one photo", n["single_photo_enrollment"]),
        ):
            lines.append(
                f"| {k + 1} | {how} | {n['people_named']} | {100 * rates['rank1']:.1f}% "
                f"| {100 * rates['dir_at_threshold']:.1f}% | {100 * rates['wrong_name_rate']:.2f}% "
                f"| {100 * rates['observed_fpir']:.2f}% |"
            )
    lines += [
        "",
        "| half | rule | margin | strangers corrected | their later photos named as that person before -> after "
        "| DIR named people before -> after | DIR corrected people before -> after |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, run in enumerate(report["halves"]):
        for rule, corrections in run["corrections"].items():
            for margin, row in corrections["by_margin"].items():
                lines.append(
                    f"| {k + 1} | {rule.replace('target_fpir_', 'FPIR ')} | {margin} "
                    f"| {corrections['strangers_corrected']} "
                    f"| {row['stranger_photos_named_as_corrected_person_before']} -> {row['still_named_after']} "
                    f"| {100 * row['dir_all_named_people_before']:.1f}% -> "
                    f"{100 * row['dir_all_named_people_after']:.1f}% "
                    f"| {100 * row['dir_corrected_people_before']:.1f}% -> "
                    f"{100 * row['dir_corrected_people_after']:.1f}% ({row['corrected_people_probes']} probes) |"
                )
    gate = report.get("quality_gate")
    if gate:
        lines += [
            "",
            f"quality gate (half 1, {gate['poor']} of {gate['events']} events made poor: noise {gate['noise']}):",
            "",
            "| replay | BCubed P | BCubed R | good faces' BCubed P | good faces' BCubed R |",
            "|---|---|---|---|---|",
        ]
        for label in ("clean", "poor, gate in force", "poor, no quality known"):
            row = gate[label]
            lines.append(
                f"| {label} | {row['bcubed_precision']:.4f} | {row['bcubed_recall']:.4f} "
                f"| {row['good_faces_bcubed_precision']:.4f} | {row['good_faces_bcubed_recall']:.4f} |"
            )
    scale = report.get("scale")
    if scale:
        lines += [
            "",
            f"at scale: {scale['events']} unknown events ({scale['how']}): {scale['visitors']} visitors, BCubed "
            f"P {scale['bcubed_precision']:.4f} R {scale['bcubed_recall']:.4f}, {scale['events_per_second']:.0f} "
            f"events/s through the store; re-clustering all of them took {scale['recluster_seconds']} s "
            f"({scale['recluster']['unchanged']} visitors unchanged)",
        ]
    lines.append(f"({report['seconds']} s)")
    return "\n".join(lines)
