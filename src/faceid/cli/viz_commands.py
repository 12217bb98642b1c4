"""``faceid viz`` (maps of the embedding space, distance histograms, ROC and DET curves, before/after maps of a
fine-tune) and ``faceid bench runtimes`` (every runtime of the descriptor and the detectors, side by side)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from faceid.cli.common import CommandError, add_json_option, echo, print_json, progress_wanted

# -- faceid viz ----------------------------------------------------------------------------------------------


def _cmd_viz(args: argparse.Namespace) -> int:
    from faceid.cli.store_commands import _open
    from faceid.viz.report import write_finetune_visuals, write_gallery_visuals

    out = Path(args.out)
    pairs = Path(args.pairs) if args.pairs else None
    root = Path(args.root) if args.root else None
    if pairs is not None and (root is None or not root.is_dir()):
        raise CommandError("--pairs needs --root, the folder holding the photos the pairs name")
    if pairs is not None and not pairs.is_file():
        raise CommandError(f"{pairs}: no such pairs file")
    with _open(args) as store:
        summary = write_gallery_visuals(
            store,
            out,
            method=args.method,
            model_id=args.model,
            max_faces=args.max_faces,
            unknown_limit=args.unknown,
            pairs_file=pairs,
            root=root,
            seed=args.seed,
            progress=progress_wanted(args),
        )
        if args.compare:
            before, after = args.compare
            summary["finetune"] = write_finetune_visuals(
                store,
                out,
                before,
                after,
                method=args.method,
                max_faces=args.max_faces,
                seed=args.seed,
                progress=progress_wanted(args),
            )
            summary["files"] += summary["finetune"]["files"]
    if args.json:
        print_json(summary)
        return 0
    echo(
        f"map of {summary['map']['faces']} faces of {summary['map']['people']} people "
        f"and {summary['map']['unknown']} unknown events ({summary['map']['method']}, model {summary['model_id']})"
    )
    curves = summary.get("curves")
    if curves:
        echo(
            f"pairs ({curves['source']}): {curves['same']} same-person, {curves['different']} different; "
            f"{curves['unit']}, threshold {curves['threshold']:.4f} ({curves['threshold_label']}); "
            f"ROC AUC {curves['auc']:.5f}, EER {100 * curves['eer']:.2f}%"
        )
    elif summary.get("curves_skipped"):
        echo(f"no curves: {summary['curves_skipped']}")
    if "finetune" in summary:
        fine = summary["finetune"]
        echo(
            f"before/after: {fine['before']['model']} -> {fine['after']['model']} on {fine['faces']} faces "
            f"(separation d' {fine['before']['d_prime']:.2f} -> {fine['after']['d_prime']:.2f})"
        )
    for path in summary["files"]:
        echo(f"wrote {path}")
    return 0


# -- faceid bench runtimes -----------------------------------------------------------------------------------


def _cmd_bench_runtimes(args: argparse.Namespace) -> int:
    from faceid.runtime_bench.bench import format_report, offered_int8, run_runtime_benchmark

    root = Path(args.root)
    if not root.is_dir():
        raise CommandError(f"{root}: no such folder")
    pairs: Path | None = Path(args.pairs) if args.pairs else root / "pairs.txt"
    if pairs is not None and not pairs.is_file():
        if args.pairs:
            raise CommandError(f"{pairs}: no such pairs file")
        pairs = None
    backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else None
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    report = run_runtime_benchmark(
        root,
        pairs,
        backends=backends,
        detectors=detectors,
        chips=args.chips,
        detector_images=args.images,
        repeats=args.repeats,
        calibration=args.calibration_chips,
        pairs_limit=args.pairs_limit,
        accuracy=not args.no_accuracy,
        threads=args.threads,
        use_cache=not args.no_cache,
        progress=progress_wanted(args),
    )
    written = None
    if args.write_int8:
        if args.no_accuracy or not report.pairs:
            raise CommandError("--write-int8 needs the pairs accuracy (drop --no-accuracy, give --pairs)")
        chosen = offered_int8(report)
        if chosen is not None and chosen.model_file:
            target = Path(args.write_int8)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(chosen.model_file, target)
            written = {"backend": chosen.key, "file": str(target)}
    if args.json:
        print_json(report.to_dict() | {"int8_written": written})
    else:
        echo(format_report(report))
        if args.write_int8:
            echo(
                f"\nint8 model ({written['backend']}) written to {written['file']}"
                if written
                else "\nno int8 model written: none is within 0.2 points of fp32's pairs accuracy"
            )
    return 0 if written or not args.write_int8 else 1


# -- registration ----------------------------------------------------------------------------------------------


def _group(subparsers: argparse._SubParsersAction, name: str, help_text: str, dest: str) -> argparse._SubParsersAction:
    """The sub-command group ``name``, joined if another module made it first (``bench``), else created."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help_text)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=dest, metavar="ACTION", required=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    from faceid.cli.store_commands import _add_store_options
    from faceid.viz.projection import METHODS

    viz = subparsers.add_parser(
        "viz",
        help="pictures of the embedding space: map, distance histograms, ROC and DET curves (PNG + JSON)",
        description="Writes map.png/json (the gallery's faces in 2-D, coloured by person, unknown events "
        "overlaid), distances.png (same- and different-person pairs with the current threshold), roc.png, "
        "det.png and curves.json; with --compare, finetune.png/json (the same faces before and after).",
    )
    viz.add_argument("--out", default="viz", help="folder the files are written to (default: ./viz)")
    viz.add_argument("--method", choices=METHODS, default="pca", help="2-D projection (umap needs umap-learn)")
    viz.add_argument("--model", default=None, help="the descriptor model whose faces are shown (default: the store's)")
    viz.add_argument("--max-faces", type=int, default=5000, help="at most about this many faces (whole people)")
    viz.add_argument("--unknown", type=int, default=200, help="at most this many recent unknown events overlaid")
    viz.add_argument("--pairs", default=None, help="curves from an LFW-style pairs file instead of the gallery")
    viz.add_argument("--root", default=None, help="with --pairs: the folder holding the photos it names")
    viz.add_argument(
        "--compare",
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        default=None,
        help="before/after maps: two model versions of the store (faceid versions list) or two .onnx files",
    )
    viz.add_argument("--seed", type=int, default=0, help="seed of the sampling and of t-SNE/UMAP")
    viz.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_store_options(viz, photos=True)
    viz.set_defaults(handler=_cmd_viz)

    bench = _group(subparsers, "bench", "measure speed or accuracy", "bench_command")
    runtimes = bench.add_parser(
        "runtimes",
        help="descriptor and detector on every backend here: s/image, batch-32 throughput, difference, accuracy",
    )
    runtimes.add_argument("--root", required=True, help="photos ROOT/<person>/<photo> (faces-dev layout)")
    runtimes.add_argument(
        "--pairs", default=None, help="LFW-style pairs file for the accuracy (default ROOT/pairs.txt)"
    )
    runtimes.add_argument("--no-accuracy", action="store_true", help="skip the pairs accuracy (faster)")
    runtimes.add_argument("--pairs-limit", type=int, default=None, help="at most this many pairs (balanced per fold)")
    runtimes.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends (default: all but ort-int8-qdq-all): ort-cpu, ort-int8-qdq, ort-int8-qop, "
        "ort-int8-qdq-all, torch-cpu, torch-cuda, torch-cuda-fp16, torch-cuda-graph, ort-cuda, ort-trt, ort-trt-fp16 "
        "(a GPU row this machine cannot run is listed as skipped, with the reason; bench/gpu_rows.py fills them)",
    )
    runtimes.add_argument("--detectors", default="fast,mmod", help="detectors timed (comma-separated; '' for none)")
    runtimes.add_argument("--chips", type=int, default=64, help="face chips the descriptor is timed on")
    runtimes.add_argument("--images", type=int, default=16, help="images the detectors are timed on")
    runtimes.add_argument("--repeats", type=int, default=5, help="timing rounds, interleaved across backends")
    runtimes.add_argument("--calibration-chips", type=int, default=128, help="chips the int8 models are calibrated on")
    runtimes.add_argument("--threads", type=int, default=None, help="threads per model (default: all cores)")
    runtimes.add_argument("--no-cache", action="store_true", help="recompute the pairs' face boxes")
    runtimes.add_argument(
        "--write-int8",
        metavar="FILE",
        default=None,
        help="write the fastest int8 model to FILE if its pairs accuracy is within 0.2 points of fp32's (else exit 1)",
    )
    runtimes.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_option(runtimes)
    runtimes.set_defaults(handler=_cmd_bench_runtimes)
