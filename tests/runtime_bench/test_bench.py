"""``faceid bench runtimes``: every backend on the same chips, GPU rows skipped with the reason, int8 judged on
accuracy; and the pieces it is made of."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from faceid.cli import main
from faceid.eval.pairs import Pair
from faceid.runtime_bench.backends import BACKENDS, backend_by_key, unavailable_reason
from faceid.runtime_bench.bench import BackendResult, RuntimeReport, format_report, offered_int8, subset_pairs

CPU_ROWS = ["ort-cpu", "ort-int8-qdq", "ort-int8-qop", "torch-cpu"]
GPU_ROWS = ["torch-cuda", "torch-cuda-fp16", "torch-cuda-graph", "ort-cuda", "ort-trt", "ort-trt-fp16"]


@pytest.mark.slow
def test_bench_runtimes_measures_every_cpu_backend(faces_dev_dir: Path, tmp_path: Path, capsys) -> None:
    int8_file = tmp_path / "descriptor-int8.onnx"
    args = ["bench", "runtimes", "--root", str(faces_dev_dir), "--backends", ",".join(CPU_ROWS + GPU_ROWS)]
    args += ["--pairs-limit", "24", "--chips", "8", "--images", "2", "--repeats", "1", "--calibration-chips", "16"]
    args += ["--detectors", "fast", "--threads", "1", "--json", "--quiet", "--write-int8", str(int8_file)]
    code = main(args)
    report = json.loads(capsys.readouterr().out)
    rows = {r["key"]: r for r in report["results"]}
    assert list(rows) == CPU_ROWS + GPU_ROWS
    torch_here = importlib.util.find_spec("torch") is not None
    for key in CPU_ROWS if torch_here else CPU_ROWS[:3]:
        row = rows[key]
        assert row["status"] == "ok", row
        assert row["descriptor_s"] > 0 and row["throughput"] > 0
        assert row["accuracy"] is not None and 0.8 < row["accuracy"] <= 1.0
    assert rows["ort-cpu"]["max_abs_diff"] == 0.0 and rows["ort-cpu"]["detector_s"]["fast"] > 0
    assert rows["torch-cpu"]["status"] == "ok" or "not available here" in rows["torch-cpu"]["note"]
    if torch_here:
        assert rows["torch-cpu"]["max_abs_diff"] < 1e-4  # the same network in another engine
    for key in ("ort-int8-qdq", "ort-int8-qop"):
        row = rows[key]
        assert 0 < row["max_abs_diff"] < 0.5 and row["min_cosine"] > 0.9
        assert Path(row["model_file"]).is_file()
        assert row["offered"] == (rows["ort-cpu"]["accuracy"] - row["accuracy"] <= 0.002 + 1e-12)
    for key in GPU_ROWS:
        row = rows[key]
        assert row["status"] == "ok" or (row["status"] == "skipped" and "not available here" in row["note"]), row
    assert report["pairs"] == 24
    offered = [k for k in ("ort-int8-qdq", "ort-int8-qop") if rows[k]["offered"]]
    if offered:
        assert code == 0 and int8_file.is_file() and report["int8_written"]["backend"] in offered
    else:
        assert code == 1 and not int8_file.exists()


def test_the_backends_say_why_they_cannot_run() -> None:
    assert unavailable_reason(backend_by_key("ort-cpu")) is None
    for backend in BACKENDS:
        reason = unavailable_reason(backend)
        assert reason is None or reason.startswith("not available here")
    with pytest.raises(ValueError, match="unknown backend"):
        backend_by_key("ort-npu")


def test_the_pytorch_cuda_fp16_and_cuda_graph_rows_are_listed() -> None:
    # They are what `--device cuda` runs where onnxruntime has no CUDA provider; on a machine without a
    # GPU they are skipped with the reason.
    keys = [b.key for b in BACKENDS if b.default]
    assert "torch-cuda-fp16" in keys and "torch-cuda-graph" in keys
    graph = backend_by_key("torch-cuda-graph")
    assert graph.engine == "pytorch" and graph.precision == "fp16" and graph.cuda_graphs
    assert backend_by_key("torch-cuda-fp16").precision == "fp16"
    if importlib.util.find_spec("torch") is not None:
        import torch

        if not torch.cuda.is_available():
            assert "no CUDA device" in str(unavailable_reason(graph))


def test_bench_runtimes_refuses_unknown_backends(faces_dev_dir: Path, capsys) -> None:
    code = main(["bench", "runtimes", "--root", str(faces_dev_dir), "--backends", "ort-cpu,quantum", "--quiet"])
    assert code == 2 and "unknown backend" in capsys.readouterr().err


def test_subset_pairs_keeps_folds_and_kinds_balanced() -> None:
    pairs = [Pair(f"a{f}{i}", f"b{f}{i}", i % 2 == 0, f) for f in range(1, 4) for i in range(20)]
    chosen = subset_pairs(pairs, 12)
    assert len(chosen) == 12
    for fold in (1, 2, 3):
        in_fold = [p for p in chosen if p.fold == fold]
        assert sum(p.same for p in in_fold) == 2 and sum(not p.same for p in in_fold) == 2
    assert subset_pairs(pairs, None) is pairs


def _report() -> RuntimeReport:
    def row(key: str, label: str, **values: object) -> BackendResult:
        return BackendResult(key, label, "ok", **values)  # type: ignore[arg-type]

    results = [
        row(
            "ort-cpu",
            "ONNX Runtime CPU fp32",
            descriptor_s=0.04,
            throughput=30.0,
            speedup=1.0,
            detector_s={"fast": 0.03},
            max_abs_diff=0.0,
            min_cosine=1.0,
            accuracy=0.9872,
        ),
        row(
            "ort-int8-qdq",
            "int8 QDQ",
            descriptor_s=0.02,
            throughput=55.0,
            speedup=2.0,
            max_abs_diff=0.08,
            min_cosine=0.98,
            accuracy=0.9875,
            offered=True,
            model_file="/x/qdq.onnx",
        ),
        row(
            "ort-int8-qop",
            "int8 QOperator",
            descriptor_s=0.02,
            throughput=60.0,
            speedup=2.0,
            max_abs_diff=0.08,
            min_cosine=0.98,
            accuracy=0.9840,
            offered=False,
            model_file="/x/qop.onnx",
        ),
        BackendResult("ort-cuda", "ONNX Runtime CUDA fp32", "skipped", "not available here: no CUDA"),
    ]
    return RuntimeReport(
        "test machine", "2026-01-01", None, 64, 16, "250x250", 5, 3600, 4554, 128, 1.0, 1.0, results, ["fast"]
    )


def test_the_table() -> None:
    report = _report()
    table = format_report(report)
    lines = table.splitlines()
    assert lines[0].startswith("| backend | descriptor s/img | vs fp32 | img/s @ batch 32 | detector fast s/img")
    assert "| ONNX Runtime CPU fp32 | 0.0400 | 1.00x | 30.0 | 0.0300 |" in table
    assert "98.75% (+0.03) | offered (within 0.2 points)" in table
    assert "98.40% (-0.32) | not offered (loses > 0.2 points)" in table
    assert "skipped: not available here: no CUDA" in table
    # Only an offered row may be handed out, even when a faster one is not offered.
    chosen = offered_int8(report)
    assert chosen is not None and chosen.key == "ort-int8-qdq"


def test_the_table_names_the_folds_of_the_pairs_file(faces_dev_dir: Path, tmp_path: Path, capsys) -> None:
    """A pairs file of 2 folds is measured and reported as a 2-fold protocol, not as LFW's usual 6."""
    lines = (faces_dev_dir / "pairs.txt").read_text().splitlines()
    per_fold = int(lines[0].split()[1])
    two_folds = [line for fold in range(2) for line in lines[1 + 2 * per_fold * fold :][: 2 * per_fold]]
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("\n".join(["2\t" + str(per_fold), *two_folds]) + "\n")
    args = ["bench", "runtimes", "--root", str(faces_dev_dir), "--pairs", str(pairs_file), "--backends", "ort-cpu"]
    args += ["--pairs-limit", "8", "--chips", "2", "--images", "1", "--repeats", "1", "--calibration-chips", "2"]
    args += ["--detectors", "", "--threads", "1", "--quiet"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "2-fold protocol" in table and "6-fold" not in table, table
    report = _report()
    report.folds = 10
    assert "10-fold protocol" in format_report(report)
