"""Commands that need only the vision core: detect, embed, verify, eval pairs, models, demo."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from faceid.cli.common import CommandError, add_json_option, add_store_location, print_json
from faceid.errors import NoFaceError
from faceid.thresholds import DLIB_DISTANCE_THRESHOLD, SFACE_FUSED_THRESHOLD
from faceid.vision.analyzer import Analyzer, distance
from faceid.vision.detect import DETECTORS, PHOTO_DETECTOR, PHOTO_MIRROR, PHOTO_SECOND_OPINION
from faceid.vision.types import Face


def add_analyzer_options(parser: argparse.ArgumentParser, descriptor: bool = True) -> None:
    """The face pipeline's options; unset, photos take the photo pipeline (the most accurate measured).
    Without ``descriptor`` (a store's commands) there is no ``--second-opinion``: a store describes faces with
    its active model version, whatever the command line says."""
    group = parser.add_argument_group(
        "face pipeline" if descriptor else "face pipeline (the descriptor is the store's: `faceid versions list`)"
    )
    group.add_argument(
        "--detector",
        choices=sorted(DETECTORS),
        default=PHOTO_DETECTOR,
        help=f"face detector (default {PHOTO_DETECTOR})",
    )
    group.add_argument("--upsample", type=int, default=0, help="mmod: upsample the image 2x this many times")
    group.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=PHOTO_MIRROR,
        help=f"average each descriptor with its mirror image's (default {'on' if PHOTO_MIRROR else 'off'})",
    )
    group.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda or tensorrt (ONNX Runtime's providers; cuda without onnxruntime-gpu runs the descriptor "
        "through PyTorch on the GPU where a CUDA build of torch is installed)",
    )
    group.add_argument("--threads", type=int, default=None, help="threads per model (default: all cores)")
    if not descriptor:
        return
    group.add_argument(
        "--second-opinion",
        choices=["none", "sface"],
        default=PHOTO_SECOND_OPINION or "none",
        help="fuse dlib's descriptor with a second network's (sface: OpenCV Zoo's SFace, from `faceid models "
        f"fetch`; default {PHOTO_SECOND_OPINION or 'none'})",
    )


def second_opinion(args: argparse.Namespace) -> str | None:
    value = getattr(args, "second_opinion", None)
    return None if value in (None, "none") else str(value)


def analyzer_from_args(args: argparse.Namespace) -> Analyzer:
    return Analyzer(
        args.detector,
        upsample=args.upsample,
        mirror=args.mirror,
        device=args.device,
        threads=args.threads,
        second_opinion=second_opinion(args),
    )


def same_person_threshold(args: argparse.Namespace) -> float:
    """The threshold asked for, or the one of the descriptor the options give."""
    if args.threshold is not None:
        return float(args.threshold)
    return SFACE_FUSED_THRESHOLD if second_opinion(args) == "sface" else DLIB_DISTANCE_THRESHOLD


def face_record(face: Face, with_embedding: bool = False) -> dict[str, Any]:
    record: dict[str, Any] = {
        "box": [round(float(v), 2) for v in face.box],
        "score": round(float(face.score), 4),
        "landmarks": np.round(face.landmarks, 2).tolist(),
    }
    if with_embedding:
        record["embedding"] = [float(v) for v in face.embedding]
    return record


def _cmd_detect(args: argparse.Namespace) -> int:
    analyzer = analyzer_from_args(args)
    results: list[dict[str, Any]] = []
    for image in args.images:
        faces = analyzer.analyze(image) if args.landmarks else None
        if faces is not None:
            records = [face_record(f) for f in faces]
        else:
            records = [
                {"box": [round(float(v), 2) for v in d.box], "score": round(float(d.score), 4)}
                for d in analyzer.detect(image)
            ]
        results.append({"image": str(image), "faces": records})
    if args.json:
        print_json(results)
    else:
        for result in results:
            print(f"{result['image']}: {len(result['faces'])} face(s)")
            for i, face in enumerate(result["faces"]):
                x1, y1, x2, y2 = face["box"]
                print(f"  #{i}: box ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f})  score {face['score']:.3f}")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    analyzer = analyzer_from_args(args)
    results: list[dict[str, Any]] = []
    for image in args.images:
        faces = analyzer.analyze(image)
        records = [face_record(f, with_embedding=True) for f in faces]
        results.append({"image": str(image), "model": analyzer.model_id, "faces": records})
    if args.json:
        print_json(results)
    else:
        for result in results:
            print(f"{result['image']}: {len(result['faces'])} face(s), model {result['model']}")
            for i, face in enumerate(result["faces"]):
                head = " ".join(f"{v:+.3f}" for v in face["embedding"][:6])
                print(f"  #{i}: [{head} ...] ({len(face['embedding'])} values; --json for all)")
    return 0


def largest_face(analyzer: Analyzer, image: str) -> Face:
    faces = analyzer.analyze(image)
    if not faces:
        raise NoFaceError(f"{image}: no face found")
    return faces[0]


def _cmd_verify(args: argparse.Namespace) -> int:
    analyzer = analyzer_from_args(args)
    first, second = largest_face(analyzer, args.image1), largest_face(analyzer, args.image2)
    dist = float(distance(first.embedding, second.embedding))
    args.threshold = same_person_threshold(args)
    same = dist < args.threshold
    result = {
        "image1": args.image1,
        "image2": args.image2,
        "same_person": same,
        "distance": round(dist, 4),
        "threshold": args.threshold,
        "model": analyzer.model_id,
    }
    if args.json:
        print_json(result)
    else:
        verdict = "same person" if same else "different people"
        print(f"{verdict}: distance {dist:.3f} (threshold {args.threshold})")
    return 0


def _cmd_eval_pairs(args: argparse.Namespace) -> int:
    from faceid.eval.pairs import evaluate_pairs

    pairs_file, root = Path(args.pairs), Path(args.root)
    if not pairs_file.is_file():
        raise CommandError(f"{pairs_file}: no such pairs file")
    if not root.is_dir():
        raise CommandError(f"{root}: no such folder")
    analyzer = analyzer_from_args(args)
    if args.model:
        analyzer = analyzer_from_args(argparse.Namespace(**{**vars(args), "second_opinion": "none"}))
    args.threshold = same_person_threshold(args)
    if args.model:
        from faceid.store.versions import analyzer_for_model

        analyzer = analyzer_for_model(args.model, analyzer, args.data_dir, args.db)
    report = evaluate_pairs(
        analyzer, pairs_file, root, threshold=args.threshold, use_cache=not args.no_cache, progress=not args.quiet
    )
    if args.json:
        print_json(report.as_dict())
        return 0
    print(f"pairs: {report.pairs} in {report.folds} folds, {report.images} images ({report.configuration})")
    print(f"{report.folds}-fold accuracy: {100 * report.kfold_mean:.2f}% +- {100 * report.kfold_std:.2f}")
    print(f"accuracy at threshold {report.fixed_threshold}: {100 * report.accuracy_at_fixed_threshold:.2f}%")
    print(f"best threshold on all pairs: {report.best_threshold_all:.3f}")
    print(f"TAR at FAR=1e-3: {100 * report.tar_at_far_1e3:.2f}%   TAR at FAR=1e-2: {100 * report.tar_at_far_1e2:.2f}%")
    print(f"ROC AUC: {report.roc_auc:.5f}")
    print(f"images with no face found: {report.no_face_found} ({report.no_face_action})")
    return 0


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    from faceid.models.blazeface import fetch_models
    from faceid.models.sface import fetch_model as fetch_sface
    from faceid.vision.embed import descriptor_onnx_path

    paths = [*fetch_models(force=args.force), fetch_sface(force=args.force), Path(descriptor_onnx_path())]
    from faceid.models.mmod import load_mmod_model

    paths.append(load_mmod_model().onnx_path)
    if args.json:
        print_json({"models": [str(p) for p in paths]})
    else:
        for path in paths:
            print(f"ready: {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from faceid.cli.demo import run_demo

    return run_demo(args.images, analyzer_from_args(args))


def register(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser("detect", help="find faces in images")
    detect.add_argument("images", nargs="+", metavar="IMG")
    detect.add_argument("--landmarks", action="store_true", help="also give the 5 landmarks of each face")
    add_analyzer_options(detect)
    add_json_option(detect)
    detect.set_defaults(handler=_cmd_detect)

    embed = subparsers.add_parser("embed", help="the descriptor of each face in images")
    embed.add_argument("images", nargs="+", metavar="IMG")
    add_analyzer_options(embed)
    add_json_option(embed)
    embed.set_defaults(handler=_cmd_embed)

    verify = subparsers.add_parser("verify", help="are the largest faces of two images the same person?")
    verify.add_argument("image1", metavar="IMG1")
    verify.add_argument("image2", metavar="IMG2")
    verify.add_argument(
        "--threshold", type=float, default=None, help="same person below this (default: the descriptor's own)"
    )
    add_analyzer_options(verify)
    add_json_option(verify)
    verify.set_defaults(handler=_cmd_verify)

    evaluate = subparsers.add_parser("eval", help="measure accuracy")
    eval_kinds = evaluate.add_subparsers(dest="eval_kind", metavar="KIND", required=True)
    pairs = eval_kinds.add_parser("pairs", help="LFW-style verification protocol on a pairs file")
    pairs.add_argument("pairs", metavar="PAIRS", help="pairs.txt (LFW format: header '<folds> <n>')")
    pairs.add_argument("--root", required=True, help="folder holding <Name>/<Name>_NNNN.jpg")
    pairs.add_argument(
        "--threshold", type=float, default=None, help="fixed threshold reported (default: the model's own)"
    )
    pairs.add_argument("--no-cache", action="store_true", help="recompute every embedding")
    pairs.add_argument("--quiet", action="store_true", help="no progress bar")
    pairs.add_argument("--model", metavar="VERSION", help="a model version stored by faceid finetune (default: dlib's)")
    add_store_location(pairs, when="with --model, the store holding it")
    add_analyzer_options(pairs)
    add_json_option(pairs)
    pairs.set_defaults(handler=_cmd_eval_pairs)

    models = subparsers.add_parser("models", help="model files")
    model_kinds = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    fetch = model_kinds.add_parser("fetch", help="set-up: fetch and build every model (the only step that downloads)")
    fetch.add_argument("--force", action="store_true", help="fetch and rebuild even if present")
    add_json_option(fetch)
    fetch.set_defaults(handler=_cmd_models_fetch)

    demo = subparsers.add_parser("demo", help="a short demonstration on photos (default: the media photos)")
    demo.add_argument("images", nargs="*", metavar="IMG")
    add_analyzer_options(demo)
    demo.set_defaults(handler=_cmd_demo)
