"""One fine-tune from labelled photos to a recalibrated ONNX descriptor and its before/after report.

1. Split the people (not photos) into trained and held out; also hold out a few photos of trained people.
2. Extract aligned chips (cached), dropping unreadable photos and photos without a face.
3. Run the frozen stages once on a few views of every training chip; train the upper stages.
4. Recalibrate: the best threshold of the new descriptor on calibration pairs becomes 0.6 by scaling
   the descriptor, so every consumer of the model keeps dlib's threshold.
5. Export ONNX, then measure baseline and new on the held-out people, the held-out photos and an
   optional LFW pairs file restricted to people not trained on (the guard against forgetting).

Everything is written inside the run folder; nothing else (no store, no active model) is touched,
so an interrupted fine-tune leaves the running system as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from faceid.errors import BadInputError
from faceid.eval.metrics import best_threshold
from faceid.eval.pairs import read_pairs
from faceid.models.descriptor import INPUT_NAME
from faceid.models.runtime import InferenceSession, create_session
from faceid.models.torch_runtime import torch_cuda_reason
from faceid.thresholds import DLIB_DISTANCE_THRESHOLD
from faceid.train.chips import ChipSet, extract_chips
from faceid.train.datasets import FaceDataset, Photo, split_people
from faceid.train.features import FeatureStore, compute_features, split_model
from faceid.train.network import DescriptorNet, load_descriptor_net
from faceid.train.report import Pairs, compare, make_pairs, pair_distances, save_report
from faceid.train.trainer import Trainer, TrainSettings
from faceid.vision.analyzer import Analyzer
from faceid.vision.detect import DEFAULT_DETECTOR
from faceid.vision.embed import DescriptorEmbedder, descriptor_onnx_path

if TYPE_CHECKING:
    from faceid.store.versions import VersionedStore, VersionRecord

log = logging.getLogger(__name__)

# How the new descriptor's threshold is found (it is then scaled to 0.6): "far" lets through, on pairs of the
# training photos, the same share of different-person pairs as dlib's model does at 0.6; "best" is the
# most accurate threshold on those pairs; "split" the most accurate on people set aside from training.
CALIBRATIONS = ("far", "best", "split")
MODEL_FILE = "model.onnx"
RUN_FILE = "run.json"
REFERENCE_PHOTOS_PER_PERSON = 4
OTHER_REFERENCE_PHOTOS = 400
EVAL_BATCH = 32
# Where training, the frozen-part features and the evaluation run: "auto" takes a CUDA GPU when torch sees one.
DEVICES = ("auto", "cuda", "cpu")


@dataclass
class FinetuneOptions:
    settings: TrainSettings = field(default_factory=TrainSettings)
    holdout_people: float = 0.2  # share of people held out for the report (ignored with heldout_names)
    heldout_names: list[str] | None = None  # these people are held out (and, with the guard, not trained on)
    holdout_photos: float = 0.1  # share of each trained person's photos held out (people with 3 or more)
    calibration: str = "far"  # one of CALIBRATIONS
    calibration_people: float = 0.1  # with calibration="split": share of the training side set aside
    pick: str = "largest"
    detector: str = DEFAULT_DETECTOR
    guard_pairs: str | None = None  # an LFW pairs file; images under its folder unless guard_root
    guard_root: str | None = None
    baseline_onnx: str | None = None  # what "original" means in the report (default: dlib's model)
    threads: int | None = None
    device: str = "auto"  # one of DEVICES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = self.settings.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneOptions:
        settings = dict(data["settings"])
        fields = {k: v for k, v in data.items() if k != "settings"}
        return cls(settings=TrainSettings(**settings), **fields)


@dataclass
class FinetuneResult:
    run_dir: Path
    model_path: Path
    scale: float
    report: dict[str, Any]
    report_paths: tuple[Path, Path]
    # Descriptors by the new model of the held-out people's photos (never trained on): enough, in a large
    # enough set, to recalibrate the store's open-set decision for the new version.
    heldout_people: list[str] = field(default_factory=list)
    heldout_embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 128), np.float32))


def resolve_device(requested: str) -> str:
    """ "cuda" or "cpu" for a requested device; "cuda" without a usable GPU falls back to the CPU with a warning."""
    if requested not in DEVICES:
        raise BadInputError(f"device must be one of {', '.join(DEVICES)}, not {requested!r}")
    if requested == "cpu":
        return "cpu"
    reason = torch_cuda_reason()
    if reason is None:
        return "cuda"
    if requested == "cuda":
        log.warning("device cuda asked for, but %s: fine-tuning on the CPU", reason)
    return "cpu"


def describe_device(device: str) -> str:
    if device != "cuda":
        return "cpu"
    return f"cuda ({torch.cuda.get_device_name(0)}, torch {torch.__version__})"


def person_key(name: str) -> str:
    """Names compared across sources: case, underscores and spacing do not matter (LFW's "Jane_Doe")."""
    return " ".join(name.replace("_", " ").casefold().split())


def names_in_pairs(pairs_file: Path, folds: set[int]) -> set[str]:
    """The people (folder names) in the given folds of an LFW pairs file."""
    pairs, _ = read_pairs(pairs_file)
    names: set[str] = set()
    for pair in pairs:
        if pair.fold in folds:
            names.add(pair.first.split("/")[0])
            names.add(pair.second.split("/")[0])
    return names


def _initializer_digest(model: onnx.ModelProto) -> str:
    digest = hashlib.sha256()
    for tensor in sorted(model.graph.initializer, key=lambda t: t.name):
        digest.update(tensor.name.encode())
        digest.update(onnx.numpy_helper.to_array(tensor).tobytes())
    for node in model.graph.node:
        digest.update(node.SerializeToString())
    return digest.hexdigest()


class ModelPair:
    """Descriptors of chips by the baseline and the new model, each chip run once per model.

    When both models share their frozen stages (the new one was trained above them), those stages
    run once per chip and only the two upper parts run twice: evaluation then costs a little more
    than one model instead of two.
    """

    def __init__(
        self,
        baseline: str,
        new: str,
        first_trained: int,
        work_dir: Path,
        threads: int | None,
        device: str = "cpu",
    ) -> None:
        self.threads = threads
        self._memo: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._trunk: InferenceSession | None = None
        self._heads: tuple[InferenceSession, InferenceSession] | None = None
        # fp32 on a GPU too: the report compares the two models, and fp16 would move both by its own rounding.
        self._full = (
            DescriptorEmbedder(onnx_path=baseline, threads=threads, device=device, precision="fp32"),
            DescriptorEmbedder(onnx_path=new, threads=threads, device=device, precision="fp32"),
        )
        if first_trained > 0:
            parts = [split_model(path, first_trained) for path in (baseline, new)]
            if _initializer_digest(parts[0][0]) == _initializer_digest(parts[1][0]):
                work_dir.mkdir(parents=True, exist_ok=True)
                paths = [
                    work_dir / "eval-trunk.onnx",
                    work_dir / "eval-head-baseline.onnx",
                    work_dir / "eval-head-new.onnx",
                ]
                for model, path in zip([parts[0][0], parts[0][1], parts[1][1]], paths, strict=True):
                    onnx.save(model, str(path))
                self._trunk = create_session(paths[0], device, threads)
                self._heads = (create_session(paths[1], device, threads), create_session(paths[2], device, threads))
            else:
                log.info("the baseline's lower stages differ from the new model's: evaluating both whole")

    def _compute(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._trunk is None or self._heads is None:
            return self._full[0].embed(chips), self._full[1].embed(chips)
        a, b = [], []
        for start in range(0, len(chips), EVAL_BATCH):
            features = self._trunk.run({INPUT_NAME: np.ascontiguousarray(chips[start : start + EVAL_BATCH])})[0]
            a.append(self._heads[0].run({_input_name(self._heads[0]): features})[0])
            b.append(self._heads[1].run({_input_name(self._heads[1]): features})[0])
        return np.concatenate(a), np.concatenate(b)

    def embed(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(chips):
            empty = np.zeros((0, 128), np.float32)
            return empty, empty
        keys = [hashlib.sha1(chip.tobytes()).digest() for chip in chips]
        todo: list[int] = []
        queued: set[bytes] = set()
        for i, key in enumerate(keys):
            if key not in self._memo and key not in queued:
                queued.add(key)
                todo.append(i)
        if todo:
            a, b = self._compute(chips[todo])
            for n, i in enumerate(todo):
                self._memo[keys[i]] = (a[n], b[n])
        return (
            np.stack([self._memo[key][0] for key in keys]),
            np.stack([self._memo[key][1] for key in keys]),
        )


def _input_name(session: InferenceSession) -> str:
    return str(session.input_names[0])  # type: ignore[attr-defined]


def _select(chipset: ChipSet, indices: list[int] | np.ndarray) -> np.ndarray:
    return chipset.chips[np.asarray(indices, np.int64)] if len(indices) else chipset.chips[:0]


def _drop_small(people_of: list[str], candidates: list[int]) -> list[int]:
    counts: dict[str, int] = {}
    for i in candidates:
        counts[people_of[i]] = counts.get(people_of[i], 0) + 1
    return [i for i in candidates if counts[people_of[i]] >= 2]


@dataclass
class Split:
    train: list[int]  # indices into the chip set
    heldout_people: list[int]
    heldout_photos: list[int]  # probes: new photos of trained people
    calibration: list[int]  # people set aside for recalibration (only with calibration="split")
    train_side_people: set[str]  # everyone on the training side, including those dropped for too few photos
    dropped_after_extraction: int

    def summary(self, people_of: list[str]) -> dict[str, int]:
        return {
            "train_people": len({people_of[i] for i in self.train}),
            "train_photos": len(self.train),
            "heldout_people": len({people_of[i] for i in self.heldout_people}),
            "heldout_people_photos": len(self.heldout_people),
            "heldout_photos": len(self.heldout_photos),
            "calibration_people": len({people_of[i] for i in self.calibration}),
            "calibration_photos": len(self.calibration),
            "people_dropped_after_extraction": self.dropped_after_extraction,
        }


def make_split(dataset: FaceDataset, chipset: ChipSet, options: FinetuneOptions) -> Split:
    seed = options.settings.seed
    everyone = sorted({photo.person for photo in dataset.photos})
    if options.heldout_names is not None:
        wanted = {person_key(name) for name in options.heldout_names}
        held = {p for p in (dataset.all_people or everyone) if person_key(p) in wanted}
        trained = set(everyone) - held
        if len(trained) < 2:
            raise BadInputError("holding out those people leaves fewer than 2 people to train on")
    else:
        trained, held = split_people(everyone, options.holdout_people, seed)
    rng = np.random.default_rng(seed + 1)
    calibration_people: set[str] = set()
    if options.calibration == "split":
        ordered = sorted(trained)
        count = max(2, round(options.calibration_people * len(ordered)))
        if len(ordered) - count < 2:
            raise BadInputError("too few people to set some aside for recalibration")
        calibration_people = {ordered[i] for i in rng.permutation(len(ordered))[:count]}
    elif options.calibration not in CALIBRATIONS:
        raise BadInputError(f"calibration must be one of {', '.join(CALIBRATIONS)}, not {options.calibration!r}")
    people_of = [photo.person for photo in chipset.photos]
    before = {people_of[i] for i in range(len(people_of))}
    heldout = _drop_small(people_of, [i for i, p in enumerate(people_of) if p in held])
    calibration = _drop_small(people_of, [i for i, p in enumerate(people_of) if p in calibration_people])
    candidates = _drop_small(
        people_of, [i for i, p in enumerate(people_of) if p in trained and p not in calibration_people]
    )
    train: list[int] = []
    probes: list[int] = []
    by_person: dict[str, list[int]] = {}
    for i in candidates:
        by_person.setdefault(people_of[i], []).append(i)
    for person in sorted(by_person):
        indices = by_person[person]
        count = round(options.holdout_photos * len(indices)) if len(indices) >= 3 else 0
        count = min(max(count, 1 if options.holdout_photos > 0 and len(indices) >= 3 else 0), len(indices) - 2)
        chosen = set(rng.choice(indices, count, replace=False).tolist()) if count > 0 else set()
        probes.extend(i for i in indices if i in chosen)
        train.extend(i for i in indices if i not in chosen)
    after = {people_of[i] for i in [*train, *heldout, *calibration]}
    # People dropped for having one photo were still on the training side of the split: a guard must
    # not count their pairs as pairs of people held out.
    train_side = (dataset.all_people or set(everyone)) - held
    return Split(
        train=train,
        heldout_people=heldout,
        heldout_photos=sorted(probes),
        calibration=calibration,
        train_side_people=train_side,
        dropped_after_extraction=len(before - after),
    )


def _labels(people_of: list[str], indices: list[int]) -> np.ndarray:
    names = sorted({people_of[i] for i in indices})
    number = {name: k for k, name in enumerate(names)}
    return np.array([number[people_of[i]] for i in indices], np.int64)


def _top_embeddings(net: DescriptorNet, features: np.ndarray, first: int, batch: int = 256) -> np.ndarray:
    """The trained stages on the stored view 0 (the chip itself) of each photo, on the net's device."""
    device = next(net.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(features), batch):
            x = torch.from_numpy(np.ascontiguousarray(features[start : start + batch, 0])).to(device)
            x = x.to(torch.float32) if x.dtype == torch.float16 else x
            out.append(net(x, first).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 128), np.float32)


def guard_section(
    options: FinetuneOptions,
    train_side: set[str],
    analyzer: Analyzer,
    models: ModelPair,
    progress: bool,
) -> dict[str, Any] | None:
    if not options.guard_pairs:
        return None
    pairs_file = Path(options.guard_pairs)
    if not pairs_file.is_file():
        raise BadInputError(f"{pairs_file}: no such pairs file")
    root = Path(options.guard_root) if options.guard_root else pairs_file.parent
    all_pairs, _ = read_pairs(pairs_file)
    trained = {person_key(p) for p in train_side}

    def untrained(rel: str) -> bool:
        return person_key(rel.split("/")[0]) not in trained

    pairs = [p for p in all_pairs if untrained(p.first) and untrained(p.second)]
    if not pairs:
        return {"pairs": 0, "note": f"every pair of {pairs_file} involves a person trained on"}
    images = sorted({p.first for p in pairs} | {p.second for p in pairs})
    photos = [Photo(rel.split("/")[0], root / rel, key=rel) for rel in images]
    chipset = extract_chips(
        photos, analyzer, pick="central", fallback_box=True, progress=progress, description="guard chips"
    )
    if chipset.failures:
        raise BadInputError(f"{sum(chipset.failures.values())} images named in {pairs_file} are missing or unreadable")
    index = {photo.key: i for i, photo in enumerate(chipset.photos)}
    chosen = Pairs(
        np.array([index[p.first] for p in pairs]),
        np.array([index[p.second] for p in pairs]),
        np.array([p.same for p in pairs]),
        np.array([p.fold for p in pairs]),
    )
    section = compare(*models.embed(chipset.chips), chosen)
    section["pairs_file"] = str(pairs_file)
    section["excluded_pairs"] = len(all_pairs) - len(pairs)
    section["note"] = (
        f"{pairs_file.name}: {len(all_pairs) - len(pairs)} pairs involving people on the training side left out"
    )
    return section


def write_run_file(run_dir: Path, data: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_FILE).write_text(json.dumps(data, indent=2) + "\n")


def read_run_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise BadInputError(f"{run_dir}: not a fine-tune run folder (no {RUN_FILE})")
    return dict(json.loads(path.read_text()))


def extract_training_chips(
    dataset: FaceDataset, options: FinetuneOptions, analyzer: Analyzer, progress: bool
) -> tuple[ChipSet, dict[str, int]]:
    """Aligned chips of the dataset's photos (cached), and how many photos were left out, by reason."""
    chipset = extract_chips(dataset.photos, analyzer, pick=options.pick, progress=progress)
    extraction = dict(chipset.failures)
    for photo, reason in chipset.failed[:20]:
        log.info("left out %s: %s", photo.path, reason)
    return chipset, extraction


def split_for_training(
    dataset: FaceDataset, chipset: ChipSet, options: FinetuneOptions, extraction: dict[str, int]
) -> Split:
    """Split: people (not photos) into trained and held out; refused with fewer than 2 to train on."""
    people_of = [photo.person for photo in chipset.photos]
    split = make_split(dataset, chipset, options)
    if len({people_of[i] for i in split.train}) < 2:
        raise BadInputError(
            "fewer than 2 people have 2 or more usable photos for training "
            f"({_describe(extraction)}); nothing to fine-tune on"
        )
    log.info("split: %s", split.summary(people_of))
    return split


@dataclass
class Calibration:
    """How the new descriptor was scaled so that dlib's threshold holds for it."""

    method: str
    source: str  # in words: which pairs and which criterion gave the threshold
    pairs: int
    raw_threshold: float
    scale: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "source": self.source,
            "pairs": self.pairs,
            "raw_threshold": self.raw_threshold,
            "scale": self.scale,
            "threshold": DLIB_DISTANCE_THRESHOLD,
        }


def calibrate(
    net: DescriptorNet,
    features: FeatureStore,
    first: int,
    chipset: ChipSet,
    split: Split,
    options: FinetuneOptions,
    run_dir: Path,
    device: str,
) -> Calibration:
    """Calibrate: the new descriptor's threshold, to be scaled to 0.6."""
    people_of = [photo.person for photo in chipset.photos]
    calibration_rng = np.random.default_rng(options.settings.seed + 2)
    if options.calibration == "split":
        unscaled = net.export_onnx(run_dir / "model-unscaled.onnx")
        embedder = DescriptorEmbedder(onnx_path=str(unscaled), threads=options.threads, device=device, precision="fp32")
        calibration_pairs = make_pairs(_labels(people_of, split.calibration), calibration_rng, 20, 20_000)
        embeddings = embedder.embed(_select(chipset, split.calibration))
        raw_threshold = best_threshold(pair_distances(embeddings, calibration_pairs)[0], calibration_pairs.same)
        source = f"the best threshold for {len(calibration_pairs)} pairs of people set aside from training"
    else:
        calibration_pairs = make_pairs(_labels(people_of, split.train), calibration_rng, 20, 20_000)
        distances = pair_distances(_top_embeddings(net, features.array, first), calibration_pairs)[0]
        if options.calibration == "far":
            # Training pulls the trained people's own photos together, which makes their best threshold
            # too tight for everyone else; how far apart different people fall moves much less.
            reference = pair_distances(
                _top_embeddings(load_descriptor_net().to(device), features.array, first), calibration_pairs
            )[0]
            negatives = ~calibration_pairs.same
            far = float(np.mean(reference[negatives] < DLIB_DISTANCE_THRESHOLD))
            raw_threshold = float(np.quantile(distances[negatives], far)) if far > 0 else float("nan")
            source = (
                f"the false-accept rate of dlib's model at 0.6 ({far:.4f}) on {calibration_pairs.negatives} "
                "different-person pairs of the training photos"
            )
        if options.calibration == "best" or not np.isfinite(raw_threshold):
            raw_threshold = best_threshold(distances, calibration_pairs.same)
            source = f"the best threshold for {len(calibration_pairs)} pairs of the training photos"
    scale = DLIB_DISTANCE_THRESHOLD / raw_threshold
    return Calibration(options.calibration, source, len(calibration_pairs), raw_threshold, scale)


def evaluate(
    models: ModelPair,
    chipset: ChipSet,
    split: Split,
    options: FinetuneOptions,
    analyzer: Analyzer,
    progress: bool,
) -> tuple[dict[str, Any], np.ndarray]:
    """Evaluate: baseline against new on the held-out people, the held-out photos and the guard pairs.
    Returns the report's sections and the new model's descriptors of the held-out people's photos."""
    people_of = [photo.person for photo in chipset.photos]
    report_rng = np.random.default_rng(options.settings.seed + 3)
    sections: dict[str, Any] = {}
    heldout_embeddings = np.zeros((0, 128), np.float32)
    if split.heldout_people:
        chips = _select(chipset, split.heldout_people)
        pairs = make_pairs(_labels(people_of, split.heldout_people), report_rng)
        original_embeddings, heldout_embeddings = models.embed(chips)
        sections["heldout_people"] = compare(original_embeddings, heldout_embeddings, pairs)
    if split.heldout_photos:
        probes = set(split.heldout_photos)
        probe_people = {people_of[p] for p in probes}
        # A few training photos per probe person and a sample of the others keep the cost of this
        # section (two models over every photo in it) small next to training.
        kept: dict[str, int] = {}
        members = list(split.heldout_photos)
        for i in split.train:
            if people_of[i] in probe_people and kept.get(people_of[i], 0) < REFERENCE_PHOTOS_PER_PERSON:
                kept[people_of[i]] = kept.get(people_of[i], 0) + 1
                members.append(i)
        taken = set(members)
        others = [i for i in split.train if i not in taken]
        if len(others) > OTHER_REFERENCE_PHOTOS:
            others = sorted(report_rng.choice(others, OTHER_REFERENCE_PHOTOS, replace=False).tolist())
        indices = members + others
        mask = np.array([i in probes for i in indices])
        chips = _select(chipset, indices)
        pairs = make_pairs(_labels(people_of, indices), report_rng, probes=mask)
        sections["heldout_photos"] = compare(*models.embed(chips), pairs)
        sections["heldout_photos"]["note"] = "each pair is a held-out photo against a training photo"
    guard = guard_section(options, split.train_side_people, analyzer, models, progress)
    if guard is not None:
        sections["guard"] = guard
    return sections, heldout_embeddings


def run_finetune(
    dataset: FaceDataset,
    options: FinetuneOptions,
    run_dir: Path,
    progress: bool = True,
    version: str | None = None,
) -> FinetuneResult:
    """Fine-tune on ``dataset``, resuming from ``run_dir``'s checkpoint if it holds one: split, frozen
    features, train, calibrate and export, evaluate. Registering the result is :func:`register_finetune`."""
    timing: dict[str, float] = {}
    started = time.monotonic()
    device = resolve_device(options.device)
    log.info("fine-tuning on %s", describe_device(device))
    if options.threads:
        torch.set_num_threads(options.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    analyzer = Analyzer(options.detector, threads=options.threads)
    chipset, extraction = extract_training_chips(dataset, options, analyzer, progress)
    timing["chips"] = time.monotonic() - started
    people_of = [photo.person for photo in chipset.photos]
    split = split_for_training(dataset, chipset, options, extraction)

    # The frozen stages run once on a few views of every training chip; training runs on their output.
    settings = options.settings
    net = load_descriptor_net().to(device)
    first = net.first_trainable(settings.trainable)
    base_onnx = descriptor_onnx_path()
    mark = time.monotonic()
    features = compute_features(
        _select(chipset, split.train),
        base_onnx,
        first,
        settings.views,
        run_dir / "features.npy",
        seed=settings.seed,
        threads=options.threads,
        progress=progress,
        device=device,
    )
    timing["frozen_features"] = time.monotonic() - mark
    trainer = Trainer(
        net, features, _labels(people_of, split.train), settings, run_dir, progress=progress, device=device
    )
    trainer.load_checkpoint()
    result = trainer.train()
    timing["training"] = result.seconds

    mark = time.monotonic()
    calibration = calibrate(net, features, first, chipset, split, options, run_dir, device)
    model_path = net.export_onnx(run_dir / MODEL_FILE, scale=calibration.scale)
    timing["export_and_calibration"] = time.monotonic() - mark

    mark = time.monotonic()
    baseline = options.baseline_onnx or base_onnx
    models = ModelPair(baseline, str(model_path), first, run_dir / "eval", options.threads, device)
    sections, heldout_embeddings = evaluate(models, chipset, split, options, analyzer, progress)
    timing["evaluation"] = time.monotonic() - mark
    timing["total"] = time.monotonic() - started

    report: dict[str, Any] = {
        "version": version,
        "run": str(run_dir),
        "data": {**dataset.summary(), "photos_left_out_at_extraction": extraction},
        "split": split.summary(people_of),
        "settings": settings.to_dict(),
        "options": {k: v for k, v in options.to_dict().items() if k != "settings"},
        "training": {
            "steps": result.steps,
            "batch_size": trainer.batch_size,
            "steps_per_epoch": trainer.steps_per_epoch,
            "epochs_completed": result.epochs_completed,
            "epoch_losses": result.epoch_losses,
            "resumed_from_step": result.resumed_from_step,
            "threads": torch.get_num_threads(),
            "device": describe_device(device),
        },
        "calibration": calibration.to_dict(),
        "timing": timing,
        **sections,
    }
    paths = save_report(report, run_dir)
    return FinetuneResult(
        run_dir,
        model_path,
        calibration.scale,
        report,
        paths,
        [people_of[i] for i in split.heldout_people],
        heldout_embeddings,
    )


def register_finetune(
    store: VersionedStore,
    result: FinetuneResult,
    parent: str | None,
    activate: bool = False,
    progress: bool = False,
) -> VersionRecord:
    """Register: the new model as a descriptor version of ``store``, its open-set calibration taken
    like its parent's from the held-out people, the report rewritten with both; activated if asked."""
    from faceid.vision.sface import split_fused_id

    version = store.register_version(result.model_path, parent=parent, report=result.report, scale=result.scale)
    result.report["version"] = version.model_id
    result.report["store_calibration"] = store.calibrate_like_parent(
        version.model_id, result.heldout_people, result.heldout_embeddings
    )
    if parent and (fused := split_fused_id(parent)) is not None:
        # The fine-tune trained the parent's dlib part; the new version is fused with SFace the same way.
        version = store.register_fused(version, fused[1])
        result.report["version"] = version.model_id
        result.report["store_calibration_fused"] = store.calibrate_like_parent(
            version.model_id, result.heldout_people, result.heldout_embeddings
        )
    result.report_paths = save_report(result.report, result.run_dir)
    if activate:
        store.activate(version.model_id, progress=progress)
    return version


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.items()) or "no photos were left out"
