"""Every tuned number that decides something, named in one place (with where it comes from)."""

from __future__ import annotations

# dlib's decision threshold for its descriptor, stored in the model file (loss_metric_2).
DLIB_DISTANCE_THRESHOLD = 0.6

# Image decoding: refuse images over this many pixels (decompression bombs). 64 MP covers any camera.
MAX_IMAGE_PIXELS = 64_000_000

# --- The photo detector (faceid.vision.refine): MMOD places the box of each face BlazeFace found, on a crop
# REFINE_CONTEXT face sides wider on each side, shrunk so the face is at most REFINE_MAX_FACE_PX (MMOD's window
# is 80 px; its pyramid finds faces from there up) and upsampled once when it is under REFINE_MIN_FACE_PX. MMOD's
# box replaces BlazeFace's when they overlap by REFINE_MIN_IOU (else it is another face in the crop).
REFINE_CONTEXT = 0.5
REFINE_MAX_FACE_PX = 160.0
# Photos up to this many pixels go through MMOD whole (dlib's exact boxes; faces-dev pairs 99.11% against 98.94%
# with boxes placed on crops): about 0.15 s on 2 cores at 640x480, ~0.8 s at 1080p, where crops cost per face.
REFINE_FULL_MMOD_PIXELS = 1_000_000
REFINE_MIN_FACE_PX = 80.0
REFINE_MIN_IOU = 0.3

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
# A query expected to scan at least this many faces (nprobe x faces per cell) uses every core, split by cell;
# smaller scans stay on one thread. 1M faces at nprobe 256 (64k scanned): p50 5.8 -> 3.8 ms on 2 cores.
IVF_PARALLEL_MIN_SCANNED = 30_000

# pgvector HNSW (PostgreSQL backend): hnsw.ef_search per query; the index itself is m=16, ef_construction=64
# (pgvector's defaults, set in the first migration).
PGVECTOR_EF_SEARCH = 100
PGVECTOR_HNSW_M = 16
PGVECTOR_HNSW_EF_CONSTRUCTION = 64

# Identification (faceid.store.match). Cohort normalisation divides a distance by sqrt(m(probe) m(centroid)),
# m = mean distance to the COHORT_K nearest background faces. On faces-dev, k = 5, 10 and 20 were within a point
# of each other at FPIR 1% and k = 50 lost 3-8 points (`faceid bench identify --cohort-k K` compares them).
# A calibration keeps at most COHORT_MAX background faces.
COHORT_K = 10
COHORT_MAX = 1000
# The synthetic cohort of a shipped or camera calibration (faceid.store.population): a mixture fitted to one face
# per person, about POPULATION_COMPONENTS_PER_PERSON components per person, each the average of at least
# POPULATION_COMPONENT_PEOPLE people (so that no component is anyone's face). On faces-dev (cohort made from one
# half of the people, measured on the other; fast pipeline, 1,000 vectors), DIR at FPIR 1% with all people
# enrolled: one Gaussian 55-59%, 1 component per 5 people 65-66%, per 3 people 67-68%, a cohort of real photos
# 75% (bench/RESULTS.md, "Built-in calibration").
POPULATION_COMPONENT_PEOPLE = 5
POPULATION_COMPONENTS_PER_PERSON = 0.2
# Synthetic vectors drawn from that mixture as the cohort: 1,000 / 3,000 / 10,000 gave DIR at FPIR 1% of
# 71.5 / 73.4 / 73.5-74.3% with every person of the measured half enrolled (faces-dev, photo pipeline).
SYNTHETIC_COHORT_SIZE = 10_000
# Candidates re-scored per probe: the people owning the nearest IDENTIFY_CANDIDATE_FACES faces, at most
# IDENTIFY_CANDIDATE_PEOPLE of them.
IDENTIFY_CANDIDATE_FACES = 64
IDENTIFY_CANDIDATE_PEOPLE = 32
# Three outcomes: when the best person passes the threshold but the second-best person's score is within
# AMBIGUOUS_SCORE_GAP of it (cohort-normalised score units, thresholds 0.74-1.0), the answer is "ambiguous" and
# nobody is named. Chosen, not tuned: on faces-dev it makes 0.01-0.07% of answers ambiguous, next to 0.03-0.15%
# wrong names that remain (`python bench/bench_decisions.py`; `faceid bench identify`, shipped_calibration).
AMBIGUOUS_SCORE_GAP = 0.03
# Self-calibration per camera (faceid.store.camera): the templates of a camera's most recent CAMERA_COHORT_MAX
# unknown tracks are its strangers, except those scoring within CAMERA_COHORT_CLEARANCE x the threshold of an
# enrolled person (maybe a missed known face). With at least CAMERA_COHORT_MIN of them, the threshold is scaled
# by their median best score over the calibration's expectation when that is below 1, by at most
# CAMERA_MAX_ADJUSTMENT; never loosened (faces-dev strangers through the video pipeline measured 1.02-1.03 times
# the expectation, and loosening by that let 1.5-2x as many strangers through: bench/RESULTS.md).
CAMERA_COHORT_MAX = 500
CAMERA_COHORT_MIN = 30
CAMERA_COHORT_CLEARANCE = 1.15
CAMERA_MAX_ADJUSTMENT = 0.15
CAMERA_REFRESH_SECONDS = 60.0
# Folder import (faceid.store.bulk), a photo with several faces and nothing of the person to compare it with
# (their only photo): the most central of the faces at least this fraction of the largest one's area. On
# faces-dev's 97 such photos the largest face was the subject's (the central one) 88 times, this rule 97 times
# (`python bench/bench_import.py`).
IMPORT_SUBJECT_MIN_AREA = 0.5
# Decision threshold on the plain centroid distance when a model has no calibration: about 1% of faces-dev
# strangers match someone in a 200-person gallery at 0.46 (`faceid calibrate --method distance --root faces-dev
# --dry-run`, dlib-resnet-v1, fast detector), where dlib's 0.6 lets about a quarter through. Calibrate for real use.
UNCALIBRATED_CENTROID_THRESHOLD = 0.46
# The same for dlib's descriptor fused with SFace's (faceid.vision.sface): about 1% of faces-dev strangers match
# someone in a 200-person gallery at this fused distance (same command, the photo pipeline's fused model).
UNCALIBRATED_FUSED_CENTROID_THRESHOLD = 0.8

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
# Verification (one photo against another, or against a person's centroid) decides at the descriptor's own
# same-person threshold: DLIB_DISTANCE_THRESHOLD, or SFACE_FUSED_THRESHOLD for the fused descriptor
# (faceid.vision.analyzer.same_person_threshold).

# --- Monitor (faceid.monitor); measured on media/short_hamilton_clip.mp4 (640x360, 29.97 fps) unless stated ---

# The detector runs this many times per second of video (0: on every frame). At 29.97 fps that is every other
# frame: tracks stay continuous (a face moves well under its own size in 1/15 s) for half the detector's cost,
# which is what the 2x-real-time budget on 2 cores needs (bench/bench_monitor.py).
MONITOR_DETECT_FPS = 15.0
# A decoded video frame whose longest side is at least MONITOR_DECODER_SHRINK_FACTOR times the detector's input
# (BlazeFace: 192 px, so 768 px and up: 720p, 1080p, 4K) reaches the detector shrunk by the video decoder's
# scaler (an average over each pixel's area, straight from the YUV picture) instead of converted to RGB whole
# and shrunk after: at 1920x1080 0.9 ms against 2.8 + 3.0 ms (bench/RESULTS.md, "Big frames"). Smaller frames
# keep the detector's own shrink, whose output the 640x360 measurements were made with.
MONITOR_DECODER_SHRINK_FACTOR = 4
# Tiled detection (faceid.vision.tiles, `faceid monitor --detect-tiles N`): neighbouring tiles overlap by a
# fifth of a tile, so that a face up to that size lies whole in some tile (at 3 x 3 tiles of 1920x1080, about
# 150 x 90 px; bigger faces come from the whole frame's pass); a tile's detection within DETECT_TILE_EDGE_PX of
# a side it shares with a neighbour is a face cut in two and is left to the tile or pass that sees it whole.
# Measured on made 1920x1080 frames (bench/bench_tiling.py, bench/RESULTS.md "Small faces in big frames").
DETECT_TILE_OVERLAP = 0.2
DETECT_TILE_EDGE_PX = 2.0
# Tracking (faceid.monitor.tracker): a detection continues a track when its box overlaps the track's predicted
# box by MONITOR_TRACK_MIN_IOU, or, failing that, when its centre is within MONITOR_TRACK_MAX_CENTRE_SHIFT face
# sizes of it at a similar size (small faces moving fast). A track needs MONITOR_TRACK_MIN_HITS detections to
# count (one stray detection is never an event) and ends after MONITOR_TRACK_MAX_GAP_SECONDS without one: on
# the clip BlazeFace loses the guest at the left edge of the audience shot for 0.53 s (at 0.5 s her appearance
# was split into two events); a person who leaves and comes back within a second is one appearance.
MONITOR_TRACK_MIN_IOU = 0.3
# Enrolling from an event: a face the server finds in the snapshot is the event's own face when its box overlaps
# the event's box by at least this IoU (two faces never overlap so much); failing that, the face is described at
# the event's box itself. The same detector on the same frame gives 0.97-0.99 on the Hamilton clip's events.
EVENT_FACE_MIN_IOU = 0.5
MONITOR_TRACK_MAX_CENTRE_SHIFT = 0.5
MONITOR_TRACK_MIN_HITS = 3
MONITOR_TRACK_MAX_GAP_SECONDS = 1.0
# A change of shot (edited video) ends every track: the mean absolute difference between consecutive frames,
# sampled on an 18 x 32 grid, in grey levels. The clip's three cuts measure 27.5-30.6; the largest change
# within a shot (a face filling half the frame turning) 14.3. 0 turns cut detection off.
MONITOR_CUT_THRESHOLD = 20.0
# Face quality (faceid.monitor.quality) = size x sharpness x pose scores, each in [0, 1]:
# - size: the box's smaller side over MONITOR_FULL_QUALITY_FACE_PX (dlib's descriptor works on 150 px chips;
#   faces-dev faces are ~110 px; under ~40 px descriptors scatter). Faces under MONITOR_MIN_FACE_PX are never
#   embedded.
# - sharpness: variance of the Laplacian of the face resized to 48x48, v / (v + MONITOR_SHARPNESS_HALF). On the
#   clip: Miranda in close-up 450-1000, on the wide stage shot 300-575, the audience in the last 2 s 13-115, the
#   out-of-focus audience behind the profile shot 2-5.
# - pose: eye distance / box width, mapped linearly from MONITOR_EYE_RATIO_PROFILE (0) to
#   MONITOR_EYE_RATIO_FRONTAL (1): frontal faces measure 0.40-0.48, Barack Obama's three-quarter view 0.19-0.29,
#   the profile in the foreground 0.10-0.17.
MONITOR_FULL_QUALITY_FACE_PX = 80.0
MONITOR_MIN_FACE_PX = 20.0
MONITOR_SHARPNESS_HALF = 100.0
MONITOR_EYE_RATIO_FRONTAL = 0.42
MONITOR_EYE_RATIO_PROFILE = 0.10
# Frames below MONITOR_EMBED_MIN_QUALITY are not worth a descriptor at all. Frames below MONITOR_NAME_MIN_QUALITY
# are embedded (so that a track seen only that badly still gives an "unknown" event) but may not name anyone.
MONITOR_EMBED_MIN_QUALITY = 0.01
MONITOR_NAME_MIN_QUALITY = 0.1
# Per track: the first good frame once the track is confirmed, then the best frame of every
# MONITOR_EMBED_INTERVAL_SECONDS, at most MONITOR_MAX_EMBEDDINGS_PER_TRACK descriptors.
MONITOR_EMBED_INTERVAL_SECONDS = 0.5
MONITOR_MAX_EMBEDDINGS_PER_TRACK = 8
# A person is named when the frames the calibrated rule gave to them hold more than this share of the track's
# quality weight (else the track is unknown): a stranger must pass the threshold on most good frames.
MONITOR_VOTE_MAJORITY = 0.5
# Event images: JPEG quality of the snapshot (the frame) and the face crop; the crop keeps MONITOR_CROP_MARGIN
# box sides of context on each side and is at most MONITOR_CROP_MAX_PX on its longer side.
MONITOR_SNAPSHOT_JPEG_QUALITY = 85
MONITOR_CROP_MARGIN = 0.5
MONITOR_CROP_MAX_PX = 320
# Live sources: attempts at the first connection before giving up (a source that is not there at all should
# fail at once), then reconnection with exponential backoff from MONITOR_RECONNECT_INITIAL_SECONDS up to
# MONITOR_RECONNECT_MAX_SECONDS, for ever; a read that waits longer than MONITOR_STREAM_TIMEOUT_SECONDS is a drop.
MONITOR_CONNECT_ATTEMPTS = 3
MONITOR_RECONNECT_INITIAL_SECONDS = 0.5
MONITOR_RECONNECT_MAX_SECONDS = 30.0
MONITOR_STREAM_TIMEOUT_SECONDS = 10.0
# Connected mode: HTTP timeout per request, upload retry backoff (a server down for minutes is retried every
# MONITOR_UPLOAD_BACKOFF_MAX_SECONDS at worst), gallery refresh period, and how long sent events stay in the
# on-disk queue (so that re-processing a file does not even re-send them).
MONITOR_HTTP_TIMEOUT_SECONDS = 15.0
MONITOR_UPLOAD_BACKOFF_INITIAL_SECONDS = 1.0
MONITOR_UPLOAD_BACKOFF_MAX_SECONDS = 60.0
MONITOR_GALLERY_REFRESH_SECONDS = 60.0
MONITOR_OUTBOX_KEEP_SENT_DAYS = 7.0
# Live preview (MJPEG over HTTP): at most this many frames per second to each viewer.
MONITOR_PREVIEW_FPS = 10.0

# --- Fine-tuning (faceid.train); measured on faces-dev, LFW folds 1-4 trained and 5-6 held out, 2 CPU cores
# (docs/finetune.md; bench/RESULTS.md, "Fine-tuning") ---

# Steps of FINETUNE_PEOPLE_PER_BATCH people x FINETUNE_PHOTOS_PER_PERSON photo views. With the triplet loss at
# 1e-5, accuracy on the held-out people at the recalibrated threshold rose from 100 to 400 steps
# (99.17% -> 99.33%; 98.92% before fine-tuning), TAR at FAR 1e-2 from 99.17% to 99.50%.
FINETUNE_STEPS = 400
FINETUNE_PEOPLE_PER_BATCH = 32
FINETUNE_PHOTOS_PER_PERSON = 4
# Adam on the folded convolution weights. 1e-5 and 3e-5 reached the same best-threshold accuracy at 400 steps
# (99.42%) but 1e-5 kept more true accepts at low false-accept rates (TAR at FAR 1e-3 98.8% against 98.3%), and
# a smaller step forgets less on a small gallery.
FINETUNE_LR_TRIPLET = 1e-5
FINETUNE_LR_PAIRWISE = 1e-5
# Batch-hard triplet margin (in dlib's distance units, where 0.6 is the decision threshold).
TRIPLET_MARGIN = 0.1
# dlib's own loss_metric margin, stored in the model file next to its 0.6 threshold (0.04).
DLIB_PAIRWISE_MARGIN = 0.04
# Views of each training photo whose frozen-part output is cached: the chip and its mirror image. Two small
# random re-alignments on top (4 views) did not help and doubled the caching time.
FINETUNE_VIEWS = 2

# --- The GPU path through PyTorch (faceid.models.torch_runtime; bench/gpu_rows.py, bench/RESULTS.md "GPU") ---

# Precision of the descriptor when `--device cuda` runs it through PyTorch (no onnxruntime-gpu). On an NVIDIA
# H200, fp16 with channels-last tensors kept the pairs accuracy of ONNX Runtime CPU fp32 (98.92% on 1,200 faces-dev
# pairs) and changed 28 of 1,094,460 same-person decisions at 0.6, at 1.7x strict fp32's throughput at batch 1024
# (bench/RESULTS.md, "GPU rows").
TORCH_CUDA_DESCRIPTOR_PRECISION = "fp16"
# Batches up to 32 replay captured CUDA graphs: on the H200 batch 1 went from 1.7 ms (launch-bound) to 0.47 ms,
# batch 32 from 1.9 to 0.9 ms (end to end, chips in and descriptors out).
TORCH_CUDA_GRAPHS = True

# --- Second opinion (faceid.vision.sface): SFace fused with dlib's descriptor ---

# Weight of SFace's unit descriptor in the fused one, [dlib, w * sface]: squared distances add as
# d_dlib^2 + w^2 d_sface^2. The best mean 4-fold accuracy on faces-dev folds 1-4 over fast/mmod x plain/mirror
# (`python bench/bench_second_opinion.py report`); accuracy is flat within 0.1 point for w in 0.5-1.1.
SFACE_FUSION_WEIGHT = 0.65
# Same-person threshold on the fused distance sqrt(d_dlib^2 + w^2 d_sface^2): the best on faces-dev folds 1-4
# (fast detector 1.002, fast + mirror 0.989, mmod 1.001; same report).
SFACE_FUSED_THRESHOLD = 1.0
# SFace alone: same person below this distance between unit descriptors, the best on faces-dev folds 1-4 with
# the fast detector (1.138; mmod 1.165; same report). OpenCV's cosine 0.363 is distance 1.128.
SFACE_DISTANCE_THRESHOLD = 1.14

# --- The unknown-faces inbox (faceid.store.visitors; bench/RESULTS.md, "Visitors") ---

# An unknown event joins the visitor whose centroid scores best against it when the score passes the model's
# calibrated threshold for a gallery of as many people as there are visitors (the visitors are the gallery an
# arriving stranger is compared with, so the calibration's stranger rate holds for it), clear of the second-best
# visitor by AMBIGUOUS_SCORE_GAP; otherwise it starts a visitor of its own.
# Faces under this quality (faceid.monitor.quality: the monitor's own bar for naming anyone) never shape a
# visitor's centroid, and join one only when they pass the threshold a VISITOR_WEAK_STRICTNESS times larger gallery
# would get (a stranger rate that much lower): a blurred 40 px face cannot glue two visitors together.
# Measured on faces-dev with a fifth of the faces made poor (synthetic; bench/RESULTS.md "Visitors"): BCubed
# precision 0.98 with the gate, 0.87 without.
VISITOR_ANCHOR_MIN_QUALITY = MONITOR_NAME_MIN_QUALITY
VISITOR_WEAK_STRICTNESS = 20
# Naming a visitor enrolls at most this many of its faces, chosen by farthest-point sampling among its anchors (the
# most typical face first, then the most different ones). Measured with `faceid bench visitors --enroll-cap N`
# (bench/RESULTS.md, "Visitors"): the calibration's stranger scores are those of one-photo centroids, and a
# centroid of several faces sits nearer everyone, so strangers named rose from 0.9% / 1.5% (cap 1, the two halves)
# to 4.6% / 3.9% (cap 3) and 4.9% / 5.7% (cap 5) for +0.2-0.6 point of DIR. One face per visitor named keeps the
# calibrated rate; a person named from several visitors still gets one face from each.
# Re-measured once the store scored several-face centroids like one face (faceid.store.match.one_face_equivalent):
# caps 1 / 3 / 5 then name 3-4 strangers of 328-331 alike and identify the same within one probe (DIR 98.0 / 97.8
# / 98.2% and 99.4% for all three), so the cap stays at 1: more faces buy nothing and a record should hold no
# more biometric data than it uses.
VISITOR_ENROLL_CAP = 1
# "Not this person": a face named P is accepted only when its score against P's centroid is lower than its
# score against the nearest of P's negative exemplars by more than this margin (cohort-normalised score units).
# `faceid bench visitors` (bench/RESULTS.md, "Visitors"; fused descriptor, one correction per returning stranger
# named, at the calibrated rule and a lenient one): at margins -0.05 / 0 / 0.05 / 0.1 their later photos were still
# named that person 0 / 0 / 0 / 0 of 30 times; the named people's DIR moved only at 0.1 (-0.2 point; the corrected
# people's -1.4). 0: no correction let through, no recall lost.
NEGATIVE_MARGIN = 0.0
# Retention: the kinds of record that can be kept for a limited number of days (None: kept for ever).
RETENTION_KINDS = ("known_events", "unknown_events", "snapshots", "crops")
RETENTION_JOB_SECONDS = 3600.0
