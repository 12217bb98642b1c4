"""Descriptor speed: dlib's compute_face_descriptor vs faceid's ONNX graph, same chips, one process.

python bench/bench_descriptor.py [--chips 64]
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from common import command_line, dataset, machine, median_ms, print_table, time_call


def load_chips(count: int) -> np.ndarray:
    import dlib
    import face_recognition_models as frm

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    chips = []
    for path in sorted(dataset("faces-dev").glob("*/*.jpg"))[::7]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        found = detector(rgb, 1)
        if found:
            chips.append(dlib.get_face_chip(rgb, predictor(rgb, found[0]), size=150, padding=0.25))
        if len(chips) == count:
            break
    return np.stack(chips)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chips", type=int, default=64)
    args = parser.parse_args()
    import dlib
    import face_recognition_models as frm

    from faceid.vision.embed import DescriptorEmbedder

    chips = load_chips(args.chips)
    dlib_model = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    ours = DescriptorEmbedder()
    ours.embed(chips[:1])  # load the session before timing

    rows = []
    for batch in (1, 32):
        batches = [chips[i : i + batch] for i in range(0, len(chips) - batch + 1, batch)][: max(1, 32 // batch)]
        batch_list = [[c for c in b] for b in batches]

        def run_dlib(batch_list: list[list[np.ndarray]] = batch_list) -> None:
            for b in batch_list:
                dlib_model.compute_face_descriptor(b) if len(b) > 1 else dlib_model.compute_face_descriptor(b[0])

        def run_ours(batches: list[np.ndarray] = batches) -> None:
            for b in batches:
                ours.embed(b)

        n = sum(len(b) for b in batches)
        dlib_ms = median_ms(time_call(run_dlib, repeat=3)) / n
        ours_ms = median_ms(time_call(run_ours, repeat=5)) / n
        rows.append([batch, dlib_ms, ours_ms, f"{dlib_ms / ours_ms:.1f}x"])

    reference = np.array([dlib_model.compute_face_descriptor(c) for c in chips])
    mine = ours.embed(chips)
    cosine = np.sum(reference * mine, 1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(mine, axis=1)
    print(f"# descriptor: ms per 150x150 chip ({machine()})\n\n`{command_line()}`\n")
    print_table(["batch", "dlib (dlib-bin)", "faceid ONNX Runtime", "faceid speed-up"], rows)
    worst = np.abs(reference - mine).max()
    print(f"\nparity on {len(chips)} faces-dev chips: min cosine {cosine.min():.7f}, max |diff| {worst:.2e}")


if __name__ == "__main__":
    main()
