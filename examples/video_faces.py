"""Name the faces of a video frame by frame (needs the `video` extra).

    python examples/video_faces.py ../shared/datasets/media/short_hamilton_clip.mp4 \\
        Miranda=../shared/datasets/media/lin-manuel-miranda.png

Each NAME=PHOTO is enrolled into a throwaway face database; every tenth frame is then identified against it.
Plain distance < 0.6 is dlib's rule for one pair of photos; against a gallery over many frames it lets
look-alikes through, so the store's open-set decision (calibrated threshold) is used instead.
For a camera or stream with tracking, votes and uploads, use `faceid monitor`.
"""

import sys
import tempfile

import av

import faceid
from faceid.store import Store

video, *references = sys.argv[1:]
analyzer = faceid.Analyzer(detector="fast")

with tempfile.TemporaryDirectory() as data_dir:
    store = Store(data_dir=data_dir, analyzer=analyzer)
    for reference in references:
        name, photo = reference.split("=", 1)
        store.enroll(name, [photo], pick="largest")
    with av.open(video) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % 10:
                continue
            for face in analyzer.analyze(frame.to_ndarray(format="rgb24")):
                result = store.identify_embedding(face.embedding)
                who = result.person.name if result.person else "unknown"
                print(f"frame {index:4d}  box {[round(v) for v in face.box]}  {who}")
    store.close()
