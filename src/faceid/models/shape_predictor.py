"""dlib's regression-tree shape predictor (``shape_predictor_5_face_landmarks.dat``) read into numpy arrays.

The file is dlib's serialization of ``dlib::shape_predictor`` (``dlib/image_processing/shape_predictor.h``)::

    int version (1)
    matrix<float,0,1> initial_shape            -- the mean shape, x0 y0 x1 y1 ... in box-normalised units
    vector<vector<regression_tree>> forests    -- one forest per cascade level
        regression_tree: vector<split_feature> splits, vector<matrix<float,0,1>> leaf_values
        split_feature:   unsigned long idx1, unsigned long idx2, float thresh
    vector<vector<unsigned long>> anchor_idx   -- per cascade, the shape point each feature pixel hangs off
    vector<vector<vector<float,2>>> deltas     -- per cascade, the feature pixel's offset from that point

Every field in it is an integer in dlib's variable-length encoding (a float is a mantissa and an exponent),
so the whole file is one stream of integers. A Python loop over its ~3.2 million integers takes seconds;
here the integer boundaries are found and decoded with numpy instead, and the parsed arrays are cached as
an ``.npz`` keyed by the file's sha256, which loads in milliseconds.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from faceid.errors import ModelFileError
from faceid.models.registry import DLIB_FILES, dlib_model_path, sha256_of
from faceid.paths import cache_dir

log = logging.getLogger(__name__)

# Bump when the arrays stored in the cache change meaning or layout, so that stale caches are ignored.
_CACHE_FORMAT = 1

# dlib's float_details marks infinities and NaN with these exponents.
_EXPONENT_INF, _EXPONENT_NEG_INF, _EXPONENT_NAN = 32000, 32001, 32002

# Byte chunk per independent walker when locating integer boundaries (see _integer_starts).
_WALK_CHUNK = 1024
_WALK_LEAD_IN = 256

# The low k bytes of a 64-bit number, for k = 0..8.
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


@dataclass(frozen=True)
class ShapePredictorModel:
    """The arrays of a trained dlib shape predictor, laid out for vectorised evaluation.

    C cascades of T trees each; every tree has S splits (a full binary tree in heap order) and L = S + 1
    leaves; each cascade samples P feature pixels; the shape has N points (2N coordinates).
    """

    initial_shape: np.ndarray  # (2N,) float32, x0 y0 x1 y1 ... normalised to the box
    split_pixel_a: np.ndarray  # (C, T, S) int32, feature pixel index of each split's first operand
    split_pixel_b: np.ndarray  # (C, T, S) int32, ... and of its second operand
    split_threshold: np.ndarray  # (C, T, S) float32, go left when pixel_a - pixel_b > threshold
    leaf_values: np.ndarray  # (C, T, L, 2N) float32, shape increments
    anchor_idx: np.ndarray  # (C, P) int32, shape point each feature pixel is placed relative to
    deltas: np.ndarray  # (C, P, 2) float32, offset of each feature pixel from its anchor point

    def __post_init__(self) -> None:
        # One model is shared by every landmarker of a process; nothing may change it in place.
        for f in fields(self):
            getattr(self, f.name).flags.writeable = False

    @property
    def num_parts(self) -> int:
        return self.initial_shape.shape[0] // 2

    @property
    def num_cascades(self) -> int:
        return self.split_threshold.shape[0]

    @property
    def trees_per_cascade(self) -> int:
        return self.split_threshold.shape[1]

    @property
    def splits_per_tree(self) -> int:
        return self.split_threshold.shape[2]

    @property
    def pixels_per_cascade(self) -> int:
        return self.anchor_idx.shape[1]

    def validate(self, name: str = "shape predictor") -> None:
        """Raise :class:`ModelFileError` unless the arrays fit together and every index is in range."""
        n2 = self.initial_shape.shape[0]
        c, t, s = self.split_threshold.shape
        p = self.anchor_idx.shape[1] if self.anchor_idx.ndim == 2 else -1
        problems = []
        if self.initial_shape.ndim != 1 or n2 == 0 or n2 % 2:
            problems.append("initial shape is not a list of 2-D points")
        if self.split_pixel_a.shape != (c, t, s) or self.split_pixel_b.shape != (c, t, s):
            problems.append("split tables disagree in shape")
        if self.leaf_values.shape != (c, t, s + 1, n2):
            problems.append(f"leaf table has shape {self.leaf_values.shape}, expected {(c, t, s + 1, n2)}")
        if (s + 1) & s:
            problems.append(f"trees with {s} splits are not full binary trees")
        if self.anchor_idx.shape != (c, p) or self.deltas.shape != (c, p, 2):
            problems.append("feature pixel tables disagree in shape")
        if not problems:
            for table in (self.split_pixel_a, self.split_pixel_b):
                if table.size and (table.min() < 0 or table.max() >= p):
                    problems.append("a split refers to a feature pixel that does not exist")
            if self.anchor_idx.size and (self.anchor_idx.min() < 0 or self.anchor_idx.max() >= n2 // 2):
                problems.append("a feature pixel is anchored to a shape point that does not exist")
        if problems:
            raise ModelFileError(f"{name}: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------------------------
# Decoding dlib's integer stream


def _integer_starts(data: np.ndarray) -> np.ndarray:
    """Byte offsets at which each serialized integer of ``data`` starts.

    An integer is a control byte (low nibble: payload length) then its payload, so the start of integer k+1
    depends on integer k: an inherently sequential walk. It is parallelised by giving every ``_WALK_CHUNK``
    bytes a walker of its own, all advanced together. A walker starts ``_WALK_LEAD_IN`` bytes before its chunk,
    possibly mid-integer, and misreads a few bytes; but walks only move forward, by 1 to 16 bytes, so it soon
    lands on a true boundary and follows the true chain from then on (within ~100 bytes on dlib's files).
    Walker k is known to be on the true chain inside its chunk when its first position there is the one where
    walker k-1, itself on the true chain, left its own chunk. A chunk whose walker fails that check is redone
    sequentially from the true entry point.
    """
    n = data.shape[0]
    if n >= 2**31 - 64:
        raise ModelFileError("file too large for a dlib shape predictor")
    chunk_starts = np.arange(0, n, _WALK_CHUNK, dtype=np.int32)
    chunk_ends = np.minimum(chunk_starts + _WALK_CHUNK, n).astype(np.int32)
    # The distance from each byte to the next integer if an integer starts there; 0 past the end, so that a
    # walker that reaches the end stays there.
    step = np.zeros(n + 17, dtype=np.uint8)
    step[:n] = (data & 0x0F) + 1
    position = np.maximum(chunk_starts - _WALK_LEAD_IN, 0)
    history = [position]
    while True:
        for _ in range(16):
            position = position + step[position]
            history.append(position)
        if (position >= chunk_ends).all():
            break
    # walks[k] is walker k's path, strictly increasing until it reaches the end of the data.
    walks = np.stack(history, axis=1)
    past_end = walks >= chunk_ends[:, None]
    exits = walks[np.arange(len(walks)), past_end.argmax(axis=1)]  # first position at or past its chunk's end
    at_or_past_start = walks >= chunk_starts[:, None]
    inside = at_or_past_start & ~past_end
    first_inside = walks[np.arange(len(walks)), at_or_past_start.argmax(axis=1)]
    true_entries = np.concatenate(([0], exits[:-1]))
    if (first_inside == true_entries).all():
        return walks[inside]

    # Slow path, for streams where some walker never reached the true chain: stitch chunk by chunk.
    pieces: list[np.ndarray] = []
    entry = 0
    for k in range(len(chunk_starts)):
        end = int(chunk_ends[k])
        if int(first_inside[k]) == entry:
            pieces.append(walks[k][inside[k]])
            entry = int(exits[k])
        else:
            own = []
            while entry < end:
                own.append(entry)
                entry += int(step[entry])
            pieces.append(np.array(own, dtype=np.int32))
    return np.concatenate(pieces)


def decode_integer_stream(raw: bytes, name: str = "<memory>") -> np.ndarray:
    """Every integer of a stream made only of dlib-serialized integers, as int64."""
    data = np.frombuffer(raw, dtype=np.uint8)
    if data.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = _integer_starts(data)
    control = data[starts]
    too_long = (control & 0x0F) > 8
    if too_long.any():
        bad = int(starts[np.argmax(too_long)])
        raise ModelFileError(f"{name}: bad integer control byte {data[bad]:#x} at byte {bad}")
    if int(starts[-1]) + 1 + int(control[-1] & 0x0F) != data.size:
        raise ModelFileError(f"{name}: the file ends in the middle of a value (truncated?)")
    # Read 8 bytes after each control byte as one little-endian number, through a view whose consecutive elements
    # start one byte apart, then keep the integer's own bytes.
    padded = np.concatenate((data, np.zeros(9, dtype=np.uint8)))
    every_offset = np.ndarray(shape=(data.size,), dtype="<u8", buffer=padded, strides=(1,))
    magnitude = every_offset[starts + 1] & _BYTE_MASKS[control & 0x0F]
    if (magnitude >> np.uint64(63)).any():
        raise ModelFileError(f"{name}: integer too large for this format")
    values = magnitude.astype(np.int64)
    return np.where(control & 0x80, -values, values)


def _floats(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """dlib's float_details -> float32, converting as dlib does when it reads into a float: ldexpf(float(m), e)."""
    regular = exponent < _EXPONENT_INF
    values = np.ldexp(mantissa.astype(np.float32), np.where(regular, exponent, 0).astype(np.int32))
    values = np.where(exponent == _EXPONENT_INF, np.float32(np.inf), values)
    values = np.where(exponent == _EXPONENT_NEG_INF, np.float32(-np.inf), values)
    values = np.where(exponent >= _EXPONENT_NAN, np.float32(np.nan), values)
    return values.astype(np.float32)


class _Cursor:
    """Walks the decoded integers, with dlib's structure checks."""

    def __init__(self, values: np.ndarray, name: str) -> None:
        self.values = values
        self.at = 0
        self.name = name

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: {message} (at value {self.at} of {len(self.values)})")

    def read_int(self) -> int:
        if self.at >= len(self.values):
            raise self.error("unexpected end of file")
        value = int(self.values[self.at])
        self.at += 1
        return value

    def count(self, what: str) -> int:
        value = self.read_int()
        if value < 0 or value > len(self.values):
            raise self.error(f"bad {what} count {value}")
        return value

    def block(self, length: int) -> np.ndarray:
        if self.at + length > len(self.values):
            raise self.error("unexpected end of file")
        chunk = self.values[self.at : self.at + length]
        self.at += length
        return chunk

    def matrix_dims(self) -> tuple[int, int]:
        rows, cols = self.read_int(), self.read_int()
        # dlib writes the dimensions negated to mark its current format; older files have them positive.
        if rows < 0 or cols < 0:
            rows, cols = -rows, -cols
        if rows < 0 or cols < 0:
            raise self.error("bad matrix dimensions")
        return rows, cols


def _per_cascade_vectors(cursor: _Cursor, num_cascades: int, what: str, width: int) -> tuple[int, np.ndarray]:
    """Skip a vector (one per cascade) of equally long vectors of ``width``-integer items; return length, offsets."""
    if cursor.count(f"{what} cascade") != num_cascades:
        raise cursor.error(f"{what} does not have one entry per cascade")
    length = -1
    offsets = []
    for _ in range(num_cascades):
        n = cursor.count(what)
        if length not in (-1, n):
            raise cursor.error(f"cascades have different numbers of {what}")
        length = n
        offsets.append(cursor.at)
        cursor.at += n * width
    if cursor.at > len(cursor.values):
        raise cursor.error("unexpected end of file")
    return length, np.asarray(offsets, dtype=np.int64)


def parse_shape_predictor(raw: bytes, name: str = "shape predictor") -> ShapePredictorModel:
    """Parse the bytes of a dlib ``shape_predictor`` file (every cascade and tree must have the same sizes)."""
    cursor = _Cursor(decode_integer_stream(raw, name), name)
    version = cursor.read_int()
    if version != 1:
        raise cursor.error(f"unsupported shape_predictor version {version}")

    rows, cols = cursor.matrix_dims()
    if cols != 1 or rows % 2:
        raise cursor.error(f"initial shape is {rows}x{cols}, expected a column of 2-D points")
    coords = cursor.block(2 * rows).reshape(rows, 2)
    initial_shape = _floats(coords[:, 0], coords[:, 1])

    # Record where each tree's splits and leaves start; the data is then gathered in one go.
    num_cascades = cursor.count("cascade")
    trees_per_cascade = -1
    splits = leaves = -1
    split_offsets: list[int] = []
    leaf_offsets: list[int] = []
    leaf_record = 2 + 2 * rows  # matrix dims, then one mantissa/exponent pair per coordinate
    for _ in range(num_cascades):
        num_trees = cursor.count("tree")
        if trees_per_cascade not in (-1, num_trees):
            raise cursor.error("cascades have different numbers of trees")
        trees_per_cascade = num_trees
        for _ in range(num_trees):
            num_splits = cursor.count("split")
            if splits not in (-1, num_splits):
                raise cursor.error("trees have different numbers of splits")
            splits = num_splits
            split_offsets.append(cursor.at)
            cursor.at += 4 * num_splits  # idx1, idx2, threshold mantissa, threshold exponent
            num_leaves = cursor.count("leaf")
            if num_leaves != num_splits + 1:
                raise cursor.error(f"a tree has {num_splits} splits but {num_leaves} leaves")
            leaves = num_leaves
            leaf_offsets.append(cursor.at)
            cursor.at += leaf_record * num_leaves
    if cursor.at > len(cursor.values) or num_cascades == 0 or trees_per_cascade <= 0 or splits <= 0:
        raise cursor.error("no usable forests")

    values = cursor.values
    split_index = np.asarray(split_offsets, dtype=np.int64)[:, None] + np.arange(4 * splits)
    split_table = values[split_index].reshape(num_cascades, trees_per_cascade, splits, 4)
    leaf_index = np.asarray(leaf_offsets, dtype=np.int64)[:, None] + np.arange(leaf_record * leaves)
    leaf_table = values[leaf_index].reshape(num_cascades, trees_per_cascade, leaves, leaf_record)
    leaf_dims = leaf_table[..., :2]
    current_format = (leaf_dims[..., 0] == -rows) & (leaf_dims[..., 1] == -1)
    older_format = (leaf_dims[..., 0] == rows) & (leaf_dims[..., 1] == 1)
    if not (current_format | older_format).all():
        raise cursor.error("a leaf's shape increment does not match the initial shape's size")
    leaf_pairs = leaf_table[..., 2:].reshape(num_cascades, trees_per_cascade, leaves, rows, 2)

    pixels, anchor_offsets = _per_cascade_vectors(cursor, num_cascades, "anchor_idx", 1)
    anchor_idx = values[anchor_offsets[:, None] + np.arange(pixels)]
    # Each delta is a dlib::vector<float,2>: x mantissa, x exponent, y mantissa, y exponent.
    delta_count, delta_offsets = _per_cascade_vectors(cursor, num_cascades, "deltas", 4)
    if delta_count != pixels:
        raise cursor.error("anchor_idx and deltas have different lengths")
    delta_values = values[delta_offsets[:, None] + np.arange(4 * pixels)].reshape(num_cascades, pixels, 2, 2)
    if cursor.at != len(values):
        raise cursor.error("unexpected data after the shape predictor")

    model = ShapePredictorModel(
        initial_shape=initial_shape,
        split_pixel_a=split_table[..., 0].astype(np.int32),
        split_pixel_b=split_table[..., 1].astype(np.int32),
        split_threshold=_floats(split_table[..., 2], split_table[..., 3]),
        leaf_values=_floats(leaf_pairs[..., 0], leaf_pairs[..., 1]),
        anchor_idx=anchor_idx.astype(np.int32),
        deltas=_floats(delta_values[..., 0], delta_values[..., 1]),
    )
    model.validate(name)
    return model


# ---------------------------------------------------------------------------------------------------------------
# Loading with a cache


def _cache_path(source_sha256: str) -> Path:
    return cache_dir() / "models" / f"shape_predictor-v{_CACHE_FORMAT}-{source_sha256[:16]}.npz"


def _read_cache(path: Path) -> ShapePredictorModel | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            model = ShapePredictorModel(**{f.name: stored[f.name] for f in fields(ShapePredictorModel)})
        model.validate(str(path))
        return model
    except (OSError, KeyError, ValueError, ModelFileError) as exc:
        log.warning("ignoring unreadable shape predictor cache %s: %s", path, exc)
        return None


def _write_cache(path: Path, model: ShapePredictorModel) -> None:
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary file and rename, so that concurrent processes never see half a file.
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as tmp:
            temporary = tmp.name
            np.savez(tmp, **{f.name: getattr(model, f.name) for f in fields(ShapePredictorModel)})
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("could not cache the parsed shape predictor at %s: %s", path, exc)
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def load_shape_predictor(path: str | Path | None = None, *, use_cache: bool = True) -> ShapePredictorModel:
    """Load a dlib shape predictor; by default the verified ``shape_predictor_5_face_landmarks.dat``.

    The parsed arrays are cached under ``faceid.paths.cache_dir()/models``, keyed by the source's sha256.
    """
    if path is None:
        source = dlib_model_path("landmarks5")  # verified against this checksum
        source_sha256 = DLIB_FILES["landmarks5"].sha256
    else:
        source = Path(path)
        if not source.is_file():
            raise ModelFileError(f"shape predictor file {source} is missing")
        source_sha256 = sha256_of(source)

    cached = _cache_path(source_sha256)
    if use_cache and cached.is_file():
        model = _read_cache(cached)
        if model is not None:
            return model
    log.info("parsing %s (once; cached at %s)", source.name, cached)
    model = parse_shape_predictor(source.read_bytes(), source.name)
    if use_cache:
        _write_cache(cached, model)
    return model
