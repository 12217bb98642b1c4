"""Where dlib's 5 landmarks fall in SFace's 112x112 ArcFace frame (faceid.vision.sface.DLIB5_IN_ARCFACE_112).

    python bench/sface_template.py [--faces 400]

For faces-dev faces (a fixed shuffle, the fast detector's box), dlib's 68-point model gives the ArcFace points
(eye centre = mean of the eye's six points, nose tip = point 30, mouth corners = points 48 and 54); the
similarity transform taking them onto the ArcFace template also takes dlib's 5 points into that frame; the
mean over the faces is the template SFace crops are aligned to from dlib's 5 points.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from common import command_line, dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=400)
    args = parser.parse_args()
    import face_recognition_models

    from faceid.models.shape_predictor import load_shape_predictor
    from faceid.vision.align import _similarity_transform
    from faceid.vision.detect import create_detector
    from faceid.vision.image import load_image
    from faceid.vision.landmarks import ShapePredictorLandmarker
    from faceid.vision.sface import ARCFACE_TEMPLATE_112

    model68 = Path(face_recognition_models.__file__).parent / "models" / "shape_predictor_68_face_landmarks.dat"
    points68 = ShapePredictorLandmarker(load_shape_predictor(model68), subpixel=True)
    points5 = ShapePredictorLandmarker()
    detector = create_detector("fast", threads=1)
    images = sorted(dataset("faces-dev").glob("*/*.jpg"))
    random.Random(0).shuffle(images)
    placed = []
    for path in images[: args.faces]:
        rgb = load_image(path)
        found = detector.detect(rgb)
        if not found:
            continue
        box = found[0].box
        p68 = points68.landmarks(rgb, box)
        p5 = points5.landmarks(rgb, box).astype(np.float64)
        arcface = np.array([p68[36:42].mean(0), p68[42:48].mean(0), p68[30], p68[48], p68[54]])
        linear, offset = _similarity_transform(arcface, ARCFACE_TEMPLATE_112)
        placed.append(p5 @ linear.T + offset)
    placed_array = np.array(placed)
    print(f"`{command_line()}`: {len(placed)} faces")
    print("mean:", np.round(placed_array.mean(0), 2).tolist())
    print("std: ", np.round(placed_array.std(0), 2).tolist())


if __name__ == "__main__":
    main()
