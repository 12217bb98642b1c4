"""The GPU rows of the runtime table and a fine-tune on the GPU, in one run of a few minutes on any CUDA machine.

Needs a CUDA build of torch; onnxruntime-gpu and TensorRT are used where installed (their rows are skipped with
the reason otherwise). Three sections, each written to OUT as soon as it is done (a later failure keeps them):

1. ``runtimes``: ``faceid bench runtimes`` on the GPU rows (PyTorch CUDA fp32, fp16 channels-last, fp16 with
   CUDA graphs, ONNX Runtime CUDA/TensorRT) against ONNX Runtime CPU fp32, on the pairs of DATA/pairs.txt.
2. ``variants``: the PyTorch variants at batch 1, 32, 256 and 1024 (ms per batch, chips/s), strict fp32, TF32,
   fp16 channels-last, fp16 CUDA graphs; for each, how many pair decisions at 0.6 change against ONNX Runtime
   CPU fp32 over every pair of the pair chips, and the pairs k-fold accuracy.
3. ``finetune``: ``run_finetune`` on DATA with ``device="cuda"`` (defaults: 400 steps), the people of
   DATA/pairs.txt held out; its timing and report. ``--cpu-steps N`` adds the same run on the CPU cut to N
   steps, for the per-step time of this machine's CPU.

DATA is a faces-dev-layout folder (``<person>/<photos>`` and an LFW ``pairs.txt``). Run from a checkout::

    PYTHONPATH=src python bench/gpu_rows.py --data ../shared/datasets/faces-dev --out gpu-results

Without a face_recognition_models install, point ``FACEID_DLIB_MODELS`` at a folder holding dlib's
``dlib_face_recognition_resnet_model_v1.dat`` and ``shape_predictor_5_face_landmarks.dat``; the BlazeFace graphs
must be in ``$FACEID_CACHE_DIR/models`` (``faceid models fetch`` puts them there).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("gpu_rows")

BATCHES = (1, 32, 256, 1024)
GPU_BACKENDS = ("ort-cpu", "torch-cuda", "torch-cuda-fp16", "torch-cuda-graph", "ort-cuda", "ort-trt", "ort-trt-fp16")


# Everything measured, by section; rewritten to OUT/results.json after each step so that a run cut short keeps
# what it measured (a device machine sends back only a few files).
RESULTS: dict[str, Any] = {}
# --cpu-check: the same code on the CPU (fp32 rows, small batches), to try the script on a machine without a GPU.
CHECK = {"device": "cuda"}


def _write(out: Path, name: str, data: Any) -> None:
    RESULTS[name] = data
    (out / "results.json").write_text(json.dumps(RESULTS, indent=2, default=str))


def environment() -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "onnxruntime": ort.__version__,
        "ort_providers": ort.get_available_providers(),
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def runtimes_section(data: Path, out: Path) -> dict[str, Any]:
    from faceid.runtime_bench.bench import format_report, run_runtime_benchmark

    started = time.monotonic()
    report = run_runtime_benchmark(
        data, data / "pairs.txt", backends=list(GPU_BACKENDS), detectors=(), chips=64, repeats=5, progress=False
    )
    table = format_report(report)
    (out / "runtimes.md").write_text(table + "\n")
    print(table, flush=True)
    result = {"seconds": time.monotonic() - started, "report": report.to_dict()}
    _write(out, "runtimes", result)
    return result


def _pair_chips(data: Path) -> tuple[np.ndarray, list[Any], list[str]]:
    from faceid.eval.pairs import read_pairs
    from faceid.runtime_bench.bench import pair_chips
    from faceid.vision.analyzer import Analyzer

    pairs, _ = read_pairs(data / "pairs.txt")
    images = sorted({p.first for p in pairs} | {p.second for p in pairs})
    return pair_chips(Analyzer(), data, images), pairs, images


def _time_ms(run: Any, batch: np.ndarray, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def variants_section(data: Path, out: Path) -> dict[str, Any]:
    import torch

    from faceid.eval.metrics import kfold_accuracy
    from faceid.models.runtime import OnnxSession
    from faceid.models.torch_runtime import TorchSession
    from faceid.thresholds import DLIB_DISTANCE_THRESHOLD
    from faceid.vision.embed import descriptor_onnx_path

    started = time.monotonic()
    path = descriptor_onnx_path()
    chips, pairs, images = _pair_chips(data)
    log.info("%d pair chips in %.0f s", len(chips), time.monotonic() - started)
    anchor = OnnxSession(path)
    reference = np.concatenate([anchor.run({"chips": chips[i : i + 64]})[0] for i in range(0, len(chips), 64)])
    index = {rel: i for i, rel in enumerate(images)}
    first = np.array([index[p.first] for p in pairs])
    second = np.array([index[p.second] for p in pairs])
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    upper = np.triu_indices(len(chips), 1)

    def decisions(vectors: np.ndarray) -> np.ndarray:
        squared = (vectors**2).sum(1)
        d2 = squared[:, None] + squared[None, :] - 2 * vectors @ vectors.T
        return np.sqrt(np.maximum(d2, 0))[upper] < DLIB_DISTANCE_THRESHOLD

    def accuracy(vectors: np.ndarray) -> float:
        distances = np.linalg.norm(vectors[first] - vectors[second], axis=1)
        return float(kfold_accuracy(distances, same, folds).mean)

    base_decisions = decisions(reference)
    variants = [
        ("fp32 strict (no TF32)", "fp32", False, False, False),
        ("fp32 channels-last strict", "fp32", True, False, False),
        ("fp32, TF32 convolutions (torch default)", "fp32", True, True, False),
        ("fp16 channels-last", "fp16", True, True, False),
        ("fp16 channels-last, CUDA graphs (<= 32)", "fp16", True, True, True),
    ]
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "chips": len(chips),
        "all_pairs": len(base_decisions),
        "lfw_pairs": len(pairs),
        "anchor_accuracy": accuracy(reference),
        "rows": rows,
    }
    batches = BATCHES
    if CHECK["device"] == "cpu":
        variants, batches = variants[:2], (1, 32)
    for label, precision, channels_last, tf32, graphs in variants:
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        session = TorchSession(path, CHECK["device"], precision, channels_last=channels_last, cuda_graphs=graphs)

        def run(batch: np.ndarray, session: TorchSession = session) -> np.ndarray:
            return session.run({"chips": batch})[0]

        row: dict[str, Any] = {"variant": label}
        for batch_size in batches:
            batch = np.resize(chips, (batch_size, *chips.shape[1:]))
            run(batch)  # warm-up: kernel choice, graph capture
            run(batch)
            ms = _time_ms(run, batch, 20 if batch_size <= 32 else 6)
            row[f"ms_b{batch_size}"] = round(ms, 3)
            row[f"chips_s_b{batch_size}"] = round(batch_size / ms * 1000, 1)
            if session.cuda:
                # The same batch already on the GPU, results left there: the network alone, no PCIe copies.
                resident = torch.from_numpy(batch).to(session._torch_device)

                def on_device(x: Any, session: TorchSession = session) -> None:
                    session.run_tensors(x)
                    torch.cuda.synchronize()

                on_device(resident)
                device_ms = _time_ms(on_device, resident, 20 if batch_size <= 32 else 6)
                row[f"device_ms_b{batch_size}"] = round(device_ms, 3)
                row[f"device_chips_s_b{batch_size}"] = round(batch_size / device_ms * 1000, 1)
        vectors = np.concatenate([run(chips[i : i + 256]) for i in range(0, len(chips), 256)])
        cosines = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
        row["max_abs_diff"] = float(np.abs(vectors - reference).max())
        row["min_cosine"] = float(cosines.min())
        row["changed_decisions"] = int((decisions(vectors) != base_decisions).sum())
        row["lfw_accuracy"] = accuracy(vectors)
        rows.append(row)
        print(json.dumps(row), flush=True)
        _write(out, "variants", result)
        del session
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False
    result["seconds"] = time.monotonic() - started
    _write(out, "variants", result)
    return result


def finetune_section(data: Path, out: Path, device: str, steps: int, run_dir: Path) -> dict[str, Any]:
    from faceid.train.datasets import read_dataset
    from faceid.train.finetune import FinetuneOptions, names_in_pairs, run_finetune
    from faceid.train.trainer import TrainSettings

    started = time.monotonic()
    shutil.rmtree(run_dir, ignore_errors=True)  # a run folder left by an earlier run would be resumed, not redone
    pairs = data / "pairs.txt"
    held = sorted(names_in_pairs(pairs, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))
    dataset = read_dataset(data, "folders")
    options = FinetuneOptions(settings=TrainSettings(steps=steps), heldout_names=held, pick="central", device=device)
    result = run_finetune(dataset, options, run_dir, progress=False)
    report = result.report
    summary = {
        "device": report["training"]["device"],
        "steps": report["training"]["steps"],
        "seconds": time.monotonic() - started,
        "timing": report["timing"],
        "split": report["split"],
        "calibration": report["calibration"],
        "heldout_people": report.get("heldout_people"),
        "heldout_photos": report.get("heldout_photos"),
    }
    _write(out, f"finetune-{device}", summary)
    print(json.dumps({k: summary[k] for k in ("device", "steps", "seconds", "timing")}, default=str), flush=True)
    return summary


def _clip_frames(clip: Path) -> list[np.ndarray]:
    try:
        import av

        with av.open(str(clip)) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except ImportError:  # OpenCV's ffmpeg reads it too
        import cv2

        capture = cv2.VideoCapture(str(clip))
        frames = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        return frames


def analyze_section(clip: Path, out: Path, rounds: int = 3) -> dict[str, Any]:
    """``Analyzer.analyze`` frame by frame on a clip, descriptor on the CPU and on the GPU, interleaved."""
    import faceid

    frames = _clip_frames(clip)
    analyzers = {"cpu": faceid.Analyzer(), CHECK["device"]: faceid.Analyzer(device=CHECK["device"])}
    for analyzer in analyzers.values():
        analyzer.warm_up()
        for frame in frames[:8]:
            analyzer.analyze(frame)
    rates: dict[str, list[float]] = {name: [] for name in analyzers}
    faces: dict[str, list[Any]] = {}
    for _ in range(rounds):
        for name, analyzer in analyzers.items():
            start = time.perf_counter()
            faces[name] = [analyzer.analyze(frame) for frame in frames]
            rates[name].append(len(frames) / (time.perf_counter() - start))
    cosines = [
        float(np.dot(a.embedding, b.embedding) / np.linalg.norm(a.embedding) / np.linalg.norm(b.embedding))
        for fa, fb in zip(faces["cpu"], faces[CHECK["device"]], strict=True)
        for a, b in zip(fa, fb, strict=False)
    ]
    embedder = analyzers[CHECK["device"]].embedder
    result = {
        "frames": len(frames),
        "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
        "faces": {name: sum(len(f) for f in found) for name, found in faces.items()},
        "fps": {name: [round(r, 1) for r in values] for name, values in rates.items()},
        "fps_median": {name: round(statistics.median(values), 1) for name, values in rates.items()},
        "min_cosine_cpu_vs_gpu": min(cosines) if cosines else None,
        "gpu_session": getattr(getattr(embedder, "session", None), "providers", None),
    }
    _write(out, "analyze", result)
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="faces-dev-layout folder with a pairs.txt")
    parser.add_argument("--out", required=True, type=Path, help="folder for the results (json, md)")
    parser.add_argument("--steps", type=int, default=400, help="fine-tuning steps on the GPU (default 400)")
    parser.add_argument("--cpu-steps", type=int, default=0, help="also fine-tune on the CPU for this many steps")
    parser.add_argument("--skip", default="", help="sections to skip: runtimes,variants,finetune")
    parser.add_argument("--cpu-check", action="store_true", help="try the script on the CPU (no GPU figures)")
    parser.add_argument("--clip", type=Path, default=None, help="a video: Analyzer.analyze fps, CPU against GPU")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment()
    print(json.dumps(env), flush=True)
    _write(args.out, "environment", env)
    if args.cpu_check:
        CHECK["device"] = "cpu"
    elif "gpu" not in env:
        print("no CUDA device visible to torch: nothing to measure", flush=True)
        return 1
    skip = set(args.skip.split(","))
    failed = []
    sections = [
        ("runtimes", lambda: runtimes_section(args.data, args.out)),
        ("variants", lambda: variants_section(args.data, args.out)),
        (
            "finetune",
            lambda: finetune_section(args.data, args.out, CHECK["device"], args.steps, Path("/tmp/gpu-ft-cuda")),
        ),
    ]
    if args.clip is not None:
        sections.insert(0, ("analyze", lambda: analyze_section(args.clip, args.out)))
    if args.cpu_steps:
        sections.append(
            (
                "finetune-cpu",
                lambda: finetune_section(args.data, args.out, "cpu", args.cpu_steps, Path("/tmp/gpu-ft-cpu")),
            )
        )
    for name, section in sections:
        if name in skip:
            continue
        mark = time.monotonic()
        try:
            section()
        except Exception:  # one broken section must not lose the others' figures
            failed.append(name)
            traceback.print_exc()
            _write(args.out, f"{name}-error", traceback.format_exc())
        print(f"section {name}: {time.monotonic() - mark:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
