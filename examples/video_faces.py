"""Name the faces of a video frame by frame (needs the `video` extra).

    python examples/video_faces.py ../shared/datasets/media/short_hamilton_clip.mp4 \\
        Miranda=../shared/datasets/media/lin-manuel-miranda.png

Each NAME=PHOTO is enrolled into a throwaway face database; every tenth frame is then identified against it.
Plain distance < 0.6 is dlib's rule for one pair of photos; against a gallery over many frames it lets
look-alikes through, so the store's open-set decision (calibrated threshold) is used instead.
The store describes the frames itself (`store.identify`): its analyzer keeps the detector given here but
embeds with the store's own descriptor, so frames and enrolled photos are always comparable.
For a camera or stream with tracking, votes and uploads, use `faceid monitor`.
"""

import sys
import tempfile

import av

import faceid
from faceid.store import Store

video, *references = sys.argv[1:]
analyzer = faceid.Analyzer(detector="fast")  # the fast detector, for frames

with tempfile.TemporaryDirectory() as data_dir:
    store = Store(data_dir=data_dir, analyzer=analyzer)
    for reference in references:
        name, photo = reference.split("=", 1)
        store.enroll(name, [photo], pick="largest")
    with av.open(video) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % 10:
                continue
            for result in store.identify(frame.to_ndarray(format="rgb24")):
                who = result.person.name if result.person else "unknown"
                print(f"frame {index:4d}  box {[round(v) for v in result.box or []]}  {result.outcome}: {who}")
    store.close()
