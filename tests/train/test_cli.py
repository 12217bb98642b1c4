"""``faceid finetune`` and ``faceid versions`` from the command line, and ``faceid eval pairs --model``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceid.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_finetune_without_torch_is_a_clear_error(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, celeba_folder: Path
) -> None:
    import faceid.train

    monkeypatch.setattr(faceid.train, "torch_available", lambda: False)
    code, _, err = run(capsys, "finetune", str(celeba_folder), "--data-dir", str(tmp_path / "data"))
    assert code == 2 and "pip install 'faceid[train]'" in err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "give a data folder"),
        (["EMPTY"], "no photos found"),
        (["MISSING"], "no such folder"),
        (["EMPTY", "--gallery"], "not both"),
        (["--resume", "NOWHERE"], "not a fine-tune run folder"),
    ],
)
def test_finetune_bad_input(capsys, tmp_path: Path, torch_module, arguments: list[str], message: str) -> None:
    (tmp_path / "EMPTY").mkdir()
    replaced = [str(tmp_path / a) if a in ("EMPTY", "MISSING", "NOWHERE") else a for a in arguments]
    code, _, err = run(capsys, "finetune", *replaced, "--data-dir", str(tmp_path / "data"))
    assert code == 2 and message in err


@pytest.mark.slow
def test_finetune_registers_a_version_that_eval_pairs_can_use(
    capsys, tmp_path: Path, torch_module, celeba_folder: Path, small_people, faces_dev_dir: Path
) -> None:
    data = str(tmp_path / "data")
    code, out, err = run(
        capsys,
        "finetune",
        str(celeba_folder),
        "--boxes",
        str(celeba_folder / "boxes.csv"),
        "--steps",
        "2",
        "--batch-people",
        "3",
        "--photos-per-person",
        "2",
        "--trainable",
        "fc",
        "--holdout-people",
        "0.3",
        "--data-dir",
        data,
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    version = report["version"]
    assert version.startswith("ft-") and report["data"]["people_dropped_fewer_than_two_photos"] == 1

    code, out, _ = run(capsys, "versions", "list", "--data-dir", data)
    assert code == 0 and version in out and sum(line.startswith("* ") for line in out.splitlines()) == 1
    code, out, _ = run(capsys, "versions", "show", version, "--data-dir", data)
    assert code == 0 and "mean L2 distance, same person" in out

    # Two folds of two same and two different pairs of the small set, in LFW's pairs format.
    names = [name for name, _ in small_people]
    lines = ["2\t2"]
    for fold in range(2):
        a, b = names[2 * fold], names[2 * fold + 1]
        lines += [f"{a}\t1\t2", f"{b}\t1\t3", f"{a}\t1\t{b}\t2", f"{b}\t4\t{a}\t3"]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    code, out, err = run(
        capsys,
        "eval",
        "pairs",
        str(pairs),
        "--root",
        str(faces_dev_dir),
        "--model",
        version,
        "--data-dir",
        data,
        "--json",
        "--quiet",
        "--no-cache",
    )
    assert code == 0, err
    assert json.loads(out)["configuration"]["model"] == version
    code, _, err = run(
        capsys,
        "eval",
        "pairs",
        str(pairs),
        "--root",
        str(faces_dev_dir),
        "--model",
        "ft-nope",
        "--data-dir",
        data,
        "--quiet",
    )
    assert code == 2 and "no model version" in err


def test_versions_commands_refuse_unknown_versions(capsys, tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, out, _ = run(capsys, "versions", "list", "--data-dir", data)
    assert code == 0 and "\n* dlib-resnet-v1:55533b28+sface-" in "\n" + out  # the default: dlib's fused with SFace's
    for action in ("activate", "show", "delete"):
        code, _, err = run(capsys, "versions", action, "ft-unknown", "--data-dir", data)
        assert code == 2 and "no model version" in err
    code, _, err = run(capsys, "versions", "rollback", "--data-dir", data)
    assert code == 2 and "no parent" in err
