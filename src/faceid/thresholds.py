"""Every tuned number that decides something, named in one place (with where it comes from)."""

from __future__ import annotations

# dlib's decision threshold for its descriptor, stored in the model file (loss_metric_2).
DLIB_DISTANCE_THRESHOLD = 0.6

# Image decoding: refuse images over this many pixels (decompression bombs). 64 MP covers any camera.
MAX_IMAGE_PIXELS = 64_000_000

# --- Identity store (faceid.store); measured by bench/bench_search.py and `faceid bench identify` ---

# Above this many faces of one model the store searches an approximate index instead of the exact one
# (index="auto"). Exact search at 100k faces stays well under 15 ms; at 1M it costs tens of ms.
APPROX_INDEX_MIN_FACES = 200_000

# FAISS IVF-Flat (SQLite backend's approximate index): about 4 sqrt(n) k-means cells, each trained on up to
# IVF_TRAIN_POINTS_PER_CELL faces and never fewer than IVF_MIN_POINTS_PER_CELL; a query scans the IVF_NPROBE
# nearest cells. nprobe 256 keeps recall@1 >= 0.99 against exact search on a synthesised 1M-face gallery
# (bench/RESULTS.md, "Gallery search"). Cells are re-learned once the gallery is IVF_RETRAIN_GROWTH times larger.
IVF_NPROBE = 256
IVF_TRAIN_POINTS_PER_CELL = 64
IVF_MIN_POINTS_PER_CELL = 39
IVF_RETRAIN_GROWTH = 4

# pgvector HNSW (PostgreSQL backend): hnsw.ef_search per query; the index itself is m=16, ef_construction=64
# (pgvector's defaults, set in the first migration).
PGVECTOR_EF_SEARCH = 100

# Identification (faceid.store.match). Cohort normalisation divides a distance by sqrt(m(probe) m(centroid)),
# m = mean distance to the COHORT_K nearest background faces. On faces-dev, k = 5, 10 and 20 were within a point
# of each other at FPIR 1% and k = 50 lost 3-8 points (`faceid bench identify --cohort-k K` compares them).
# A calibration keeps at most COHORT_MAX background faces.
COHORT_K = 10
COHORT_MAX = 1000
# Candidates re-scored per probe: the people owning the nearest IDENTIFY_CANDIDATE_FACES faces, at most
# IDENTIFY_CANDIDATE_PEOPLE of them.
IDENTIFY_CANDIDATE_FACES = 64
IDENTIFY_CANDIDATE_PEOPLE = 32
# Decision threshold on the plain centroid distance when a model has no calibration: about 1% of faces-dev
# strangers match someone in a 200-person gallery at 0.46 (`faceid calibrate --method distance --root faces-dev
# --dry-run`, dlib-resnet-v1, fast detector), where dlib's 0.6 lets about a quarter through. Calibrate for real use.
UNCALIBRATED_CENTROID_THRESHOLD = 0.46

# --- Server (faceid.server) ---

# Largest request body the server reads (a photo upload, or both photos of a verify), in bytes; `faceid serve
# --max-upload-mb` overrides it. 20 MiB holds any phone photo at full resolution.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Failed-login throttling: after this many failures within the window a username (or a client address, with
# its own larger allowance so that one office behind NAT cannot lock everyone out) is refused for
# LOGIN_LOCKOUT_SECONDS, doubling with each further failure up to LOGIN_LOCKOUT_MAX_SECONDS.
LOGIN_MAX_FAILURES_PER_USER = 5
LOGIN_MAX_FAILURES_PER_ADDRESS = 20
LOGIN_FAILURE_WINDOW_SECONDS = 15 * 60
LOGIN_LOCKOUT_SECONDS = 60
LOGIN_LOCKOUT_MAX_SECONDS = 15 * 60
# Sessions end after this long without a request, and in any case this long after logging in.
SESSION_IDLE_SECONDS = 12 * 60 * 60
SESSION_MAX_SECONDS = 7 * 24 * 60 * 60
# Verification (one photo against another, or against a person's centroid): dlib's same-person threshold,
# the operating point it reports 99.38% on LFW pairs with.
VERIFY_DISTANCE_THRESHOLD = DLIB_DISTANCE_THRESHOLD
