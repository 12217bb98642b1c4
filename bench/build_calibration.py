"""Build the calibration that ships inside faceid for the built-in descriptor model.

    python bench/build_calibration.py --root ../shared/datasets/faces-dev [--second-opinion none]

Describes every photo of ROOT/<person>/<photos> with the photo pipeline (cached), then writes
src/faceid/store/calibrations/<model id>.npz: a synthetic cohort (no one's descriptor; see
faceid.store.population) and the sorted stranger scores that set the threshold for each gallery size
(faceid.store.shipped). Prints what was written; `faceid bench identify` measures such a calibration on
people it was not made from.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from faceid.store.calibrate import describe_photos, folder_photos
from faceid.store.shipped import SHIPPED_DIR, build_calibration, save_shipped
from faceid.vision.analyzer import photo_analyzer
from faceid.vision.detect import PHOTO_SECOND_OPINION

log = logging.getLogger("build_calibration")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="ROOT/<person>/<photos>, e.g. faces-dev")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help="folder to write the .npz into")
    parser.add_argument(
        "--second-opinion",
        choices=["none", "sface"],
        default=PHOTO_SECOND_OPINION or "none",
        help="the descriptor calibrated: dlib's fused with SFace's (the default model) or dlib's alone",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    analyzer = photo_analyzer(second_opinion=None if args.second_opinion == "none" else args.second_opinion)
    faces = describe_photos(analyzer, args.root, folder_photos(args.root), progress=sys.stderr.isatty())
    calibration = build_calibration(
        faces, analyzer.model_id, source=f"{args.root.name} ({len(faces.paths)} photos), {analyzer.pipeline_id}"
    )
    path = save_shipped(calibration, args.out)
    summary = {k: v for k, v in calibration.summary().items() if k != "impostor_tail"}
    print(json.dumps({"written": str(path), "bytes": path.stat().st_size, **summary}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
