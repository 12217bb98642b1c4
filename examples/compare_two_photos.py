"""Are the people in two photos the same person?

python examples/compare_two_photos.py ../shared/datasets/media/obama.jpg ../shared/datasets/media/obama2.jpg
"""

import sys

import faceid

first, second = sys.argv[1], sys.argv[2]
analyzer = faceid.Analyzer()  # the fast pipeline, dlib's descriptor; models load on first use

faces_a = analyzer.analyze(first)
faces_b = analyzer.analyze(second)
if not faces_a or not faces_b:
    sys.exit("no face found in one of the photos")

# The largest face of each photo; same_person applies the descriptor's own threshold (dlib's 0.6 here;
# faceid.analyze, the photo pipeline, fuses SFace's descriptor with dlib's and decides at 1.0).
a = max(faces_a, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
b = max(faces_b, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
d = faceid.distance(a.embedding, b.embedding)
print(f"distance {d:.3f}: {'same person' if faceid.same_person(a, b) else 'different people'}")
