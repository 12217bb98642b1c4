"""``faceid finetune`` (needs torch) and ``faceid versions`` (descriptor model versions in the store; no torch)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from faceid.cli.common import CommandError, add_json_option, add_store_location, print_json, progress_wanted
from faceid.thresholds import (
    FINETUNE_PEOPLE_PER_BATCH,
    FINETUNE_PHOTOS_PER_PERSON,
    FINETUNE_STEPS,
    FINETUNE_VIEWS,
)

log = logging.getLogger(__name__)


def _store_options(parser: argparse.ArgumentParser) -> None:
    add_store_location(parser.add_argument_group("store"))


def _open_versions(args: argparse.Namespace, device: str = "cpu") -> Any:
    from faceid.store.versions import VersionedStore

    if device == "cpu":
        return VersionedStore(args.data_dir, args.db)
    from faceid.vision.analyzer import Analyzer

    # Activating the new version re-embeds the gallery's faces: on the GPU too when fine-tuning used one.
    return VersionedStore(args.data_dir, args.db, analyzer=Analyzer(device=device))


def _folds(text: str) -> set[int]:
    try:
        return {int(part) for part in text.replace(",", " ").split()}
    except ValueError:
        raise CommandError(f"--holdout-folds takes fold numbers such as 5,6, not {text!r}") from None


# -- finetune ------------------------------------------------------------------------------------------


def _dataset(args: argparse.Namespace, store: Any) -> Any:
    from faceid.train.datasets import read_dataset

    if args.gallery:
        if args.data is not None:
            raise CommandError("give a data folder or --gallery, not both")
        from faceid.train.store_dataset import gallery_dataset

        return gallery_dataset(store)
    if args.data is None:
        raise CommandError("give a data folder (<person>/<photos> or CelebA's layout), or --gallery")
    return read_dataset(args.data, args.layout, args.identities, args.boxes, args.images)


def _options(args: argparse.Namespace, baseline_onnx: str | None) -> Any:
    from faceid.train.finetune import FinetuneOptions, names_in_pairs
    from faceid.train.trainer import TrainSettings

    settings = TrainSettings(
        loss=args.loss,
        trainable=args.trainable,
        steps=args.steps,
        people_per_batch=args.batch_people,
        photos_per_person=args.photos_per_person,
        learning_rate=args.lr,
        margin=args.margin,
        views=args.views,
        seed=args.seed,
    )
    heldout_names = None
    if args.holdout_pairs:
        pairs = Path(args.holdout_pairs)
        if not pairs.is_file():
            raise CommandError(f"{pairs}: no such pairs file")
        if not args.holdout_folds:
            raise CommandError("--holdout-pairs needs --holdout-folds (the folds whose people are held out)")
        heldout_names = sorted(names_in_pairs(pairs, _folds(args.holdout_folds)))
        if not heldout_names:
            raise CommandError(f"{pairs} has no pairs in folds {args.holdout_folds}")
    return FinetuneOptions(
        settings=settings,
        holdout_people=args.holdout_people,
        heldout_names=heldout_names,
        holdout_photos=args.holdout_photos,
        calibration=args.calibration,
        calibration_people=args.calibration_people,
        pick=args.pick,
        detector=args.detector,
        guard_pairs=args.guard,
        guard_root=args.guard_root,
        baseline_onnx=baseline_onnx,
        threads=args.threads,
        device=args.device,
    )


def _print_report(report: dict[str, Any], paths: tuple[Path, Path]) -> None:
    from faceid.train.report import render_markdown

    print(render_markdown(report))
    print(f"report: {paths[0]}  {paths[1]}")


def _cmd_finetune(args: argparse.Namespace) -> int:
    from faceid.train import TORCH_HINT, torch_available

    if not torch_available():
        raise CommandError(TORCH_HINT)
    from faceid.errors import ModelUnavailableError
    from faceid.train import require_torch

    try:
        require_torch()
    except ModelUnavailableError as error:
        raise CommandError(str(error)) from None
    from faceid.train.finetune import (
        FinetuneOptions,
        read_run_file,
        register_finetune,
        resolve_device,
        run_finetune,
        write_run_file,
    )

    started = time.monotonic()
    progress = progress_wanted(args)
    saved: dict[str, Any] | None = None
    if args.resume:
        run_dir = Path(args.resume)
        saved = read_run_file(run_dir)
        source_args = argparse.Namespace(**saved["arguments"])
    else:
        source_args = args
    # A folder is read (and refused) before the store is opened: bad input never touches the store.
    dataset = None if source_args.gallery else _dataset(source_args, None)
    wanted = args.device if args.device != "auto" or saved is None else saved["options"].get("device", "auto")
    device = resolve_device(wanted)
    with _open_versions(args, device) as store:
        if dataset is None:
            dataset = _dataset(source_args, store)
        if saved is not None:
            options = FinetuneOptions.from_dict(saved["options"])
            if args.steps_given:
                options.settings.steps = args.steps
            if args.device != "auto":
                options.device = args.device
            parent = saved.get("parent")
        else:
            parent_version = store.active_version()
            parent = parent_version.model_id
            options = _options(args, store.onnx_path(parent_version))
            run_dir = Path(args.run) if args.run else store.new_run_dir()
            if (run_dir / "run.json").exists():
                raise CommandError(f"{run_dir} already holds a fine-tune run; use --resume {run_dir} to continue it")
            arguments = {k: v for k, v in vars(args).items() if k != "handler"}
            write_run_file(run_dir, {"arguments": arguments, "options": options.to_dict(), "parent": parent})
        try:
            result = run_finetune(dataset, options, run_dir, progress=progress)
        except KeyboardInterrupt:
            print(
                "faceid: interrupted; nothing was registered or activated. "
                f"Resume with: faceid finetune --resume {run_dir}",
                file=sys.stderr,
            )
            return 130
        version = None
        if not args.no_register:
            version = register_finetune(store, result, parent, activate=args.activate, progress=progress)
    elapsed = time.monotonic() - started
    if args.json:
        print_json({**result.report, "seconds": elapsed, "activated": bool(version and args.activate)})
        return 0
    _print_report(result.report, result.report_paths)
    if version is not None:
        state = "active now" if args.activate else f"activate it with: faceid versions activate {version.model_id}"
        print(f"new version {version.model_id} ({state})")
    print(f"took {elapsed:.0f} s")
    return 0


# -- versions ------------------------------------------------------------------------------------------


def _version_line(version: Any, active: str) -> str:
    mark = "*" if version.model_id == active else " "
    parent = f"  parent {version.parent_id}" if version.parent_id else ""
    summary = version.headline()
    return (
        f"{mark} {version.model_id}  {version.created_at:%Y-%m-%d %H:%M}{parent}{('  ' + summary) if summary else ''}"
    )


def _cmd_versions_list(args: argparse.Namespace) -> int:
    with _open_versions(args) as store:
        versions = store.list_versions()
        active = store.active_version().model_id
        counts = store.stats()["faces_by_model"]
    if args.json:
        print_json(
            {"active": active, "versions": [v.to_dict() | {"faces": counts.get(v.model_id, 0)} for v in versions]}
        )
        return 0
    for version in versions:
        print(_version_line(version, active) + f"  ({counts.get(version.model_id, 0)} faces)")
    return 0


def _cmd_versions_show(args: argparse.Namespace) -> int:
    with _open_versions(args) as store:
        version = store.get_version(args.version)
    if args.json:
        print_json(version.to_dict(full=True))
        return 0
    data = version.to_dict(full=True)
    report = data.pop("report", None)
    for key, value in data.items():
        print(f"{key}: {value}")
    if report:
        from faceid.train.report import render_markdown

        print()
        print(render_markdown(report))
    return 0


def _cmd_versions_activate(args: argparse.Namespace) -> int:
    with _open_versions(args, args.device) as store:
        outcome = store.activate(args.version, progress=progress_wanted(args))
    if args.json:
        print_json(outcome)
    else:
        print(
            f"active version: {outcome['active']} (was {outcome['previous']}); {outcome['faces']} faces re-embedded "
            f"in {outcome['seconds']:.1f} s"
        )
    return 0


def _cmd_versions_rollback(args: argparse.Namespace) -> int:
    with _open_versions(args) as store:
        outcome = store.rollback(progress=progress_wanted(args))
    if args.json:
        print_json(outcome)
    else:
        print(f"rolled back to {outcome['active']} (was {outcome['previous']}); {outcome['faces']} faces re-embedded")
    return 0


def _cmd_versions_delete(args: argparse.Namespace) -> int:
    with _open_versions(args) as store:
        removed = store.delete_version(args.version)
    if args.json:
        print_json(removed)
    else:
        print(f"deleted version {removed['model_id']} ({removed['embeddings']} kept embeddings removed)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from faceid.vision.detect import DEFAULT_DETECTOR, DETECTORS

    finetune = subparsers.add_parser(
        "finetune",
        help="fine-tune the face descriptor on labelled photos or the gallery (needs torch)",
        description=(
            "Fine-tune the descriptor and register the result as a new model version (not activated unless "
            "--activate). Prints and saves a before/after report on people and photos held out from training."
        ),
    )
    source = finetune.add_argument_group("training data")
    source.add_argument("data", nargs="?", metavar="DATA", help="<person>/<photos> folder, or a CelebA-layout folder")
    source.add_argument("--gallery", action="store_true", help="fine-tune on the people in the store instead")
    source.add_argument("--layout", choices=["auto", "folders", "celeba"], default="auto", help="layout of DATA")
    source.add_argument("--identities", help="CelebA identity file (default: DATA/identity_CelebA.txt)")
    source.add_argument("--boxes", help="csv of face boxes: image_name,x1,y1,x2,y2 (CelebA layout)")
    source.add_argument("--images", help="CelebA images folder (default: DATA/img_align_celeba, img_celeba or DATA)")
    source.add_argument(
        "--pick",
        choices=["largest", "central"],
        default="largest",
        help="which face of a photo (central: LFW-like crops)",
    )
    source.add_argument("--detector", choices=sorted(DETECTORS), default=DEFAULT_DETECTOR, help="face detector")

    training = finetune.add_argument_group("training")
    training.add_argument("--loss", choices=["triplet", "pairwise"], default="triplet", help="metric-learning loss")
    training.add_argument(
        "--trainable",
        choices=["fc", "last", "last2", "256", "128", "64", "all"],
        default="256",
        help="stages fine-tuned: the fc, the last one or two blocks, or every block from the N-channel level up",
    )
    training.add_argument("--steps", type=int, default=None, help=f"training steps (default {FINETUNE_STEPS})")
    training.add_argument("--batch-people", type=int, default=FINETUNE_PEOPLE_PER_BATCH, help="people per batch")
    training.add_argument(
        "--photos-per-person", type=int, default=FINETUNE_PHOTOS_PER_PERSON, help="photo views per person in a batch"
    )
    training.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: by loss)")
    training.add_argument("--margin", type=float, default=None, help="loss margin (triplet 0.1, pairwise 0.04)")
    training.add_argument(
        "--views", type=int, default=FINETUNE_VIEWS, help="views per photo: 1 as is, 2 with its mirror, more jittered"
    )
    training.add_argument("--seed", type=int, default=0, help="random seed (split, batches, views)")
    training.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    training.add_argument(
        "--device",
        choices=["auto", "cuda", "cpu"],
        default="auto",
        help="train, cache features and evaluate on a CUDA GPU (auto: when torch sees one; cuda without one "
        "falls back to the CPU with a warning)",
    )

    held = finetune.add_argument_group("held out for the report and calibration")
    held.add_argument("--holdout-people", type=float, default=0.2, help="share of people held out (default 0.2)")
    held.add_argument("--holdout-pairs", metavar="PAIRS", help="hold out the people of some folds of this pairs file")
    held.add_argument("--holdout-folds", metavar="FOLDS", help="with --holdout-pairs: e.g. 5,6")
    held.add_argument(
        "--holdout-photos", type=float, default=0.1, help="share of each trained person's photos held out (default 0.1)"
    )
    held.add_argument(
        "--calibration",
        choices=["far", "best", "split"],
        default="far",
        help="threshold of the new model: the false-accept rate of dlib's at 0.6 on training pairs (far), the best "
        "threshold on training pairs (best), or on people set aside from training (split)",
    )
    held.add_argument(
        "--calibration-people", type=float, default=0.1, help="with split: share of trained people set aside"
    )
    held.add_argument("--guard", metavar="PAIRS", help="LFW pairs file: accuracy on its pairs of people not trained on")
    held.add_argument("--guard-root", metavar="DIR", help="images of --guard (default: the pairs file's folder)")

    run = finetune.add_argument_group("run")
    run.add_argument("--run", metavar="DIR", help="run folder (default: a new folder under the store's finetune/)")
    run.add_argument("--resume", metavar="DIR", help="continue an interrupted run from its last checkpoint")
    run.add_argument("--no-register", action="store_true", help="do not add the result to the store's versions")
    run.add_argument("--activate", action="store_true", help="activate the new version when done (re-embeds faces)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    _store_options(finetune)
    add_json_option(finetune)
    finetune.set_defaults(handler=_finetune_entry)

    versions = subparsers.add_parser("versions", help="descriptor model versions: list, activate, roll back")
    actions = versions.add_subparsers(dest="versions_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every version, the active one marked *")
    show = actions.add_parser("show", help="one version with its fine-tune report")
    show.add_argument("version", metavar="VERSION")
    activate = actions.add_parser(
        "activate", help="re-embed every face with VERSION, then switch to it at once (search keeps answering)"
    )
    activate.add_argument("version", metavar="VERSION")
    activate.add_argument(
        "--device",
        choices=["cpu", "cuda", "tensorrt"],
        default="cpu",
        help="re-embed on this device (cuda: ONNX Runtime's CUDA provider, else the descriptor through PyTorch)",
    )
    rollback = actions.add_parser("rollback", help="activate the active version's parent again")
    delete = actions.add_parser("delete", help="delete a version that is not active (its file and kept embeddings)")
    delete.add_argument("version", metavar="VERSION")
    for parser, handler in (
        (listing, _cmd_versions_list),
        (show, _cmd_versions_show),
        (activate, _cmd_versions_activate),
        (rollback, _cmd_versions_rollback),
        (delete, _cmd_versions_delete),
    ):
        _store_options(parser)
        add_json_option(parser)
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
        parser.set_defaults(handler=handler)


def _finetune_entry(args: argparse.Namespace) -> int:
    args.steps_given = args.steps is not None
    if args.steps is None:
        args.steps = FINETUNE_STEPS
    if args.resume and (args.data or args.gallery):
        raise CommandError("--resume continues a run with its own data and settings; give no data with it")
    if args.resume and args.run:
        raise CommandError("give --run or --resume, not both")
    return _cmd_finetune(args)
