"""Decoder for dlib's binary serialization format (``dlib/serialize.h``).

Only what is needed to read the trained networks and shape predictors shipped by
``face_recognition_models``: sign-magnitude integers, mantissa/exponent floats,
strings, bools and dlib tensors / matrices.
"""

from __future__ import annotations

import builtins
import math
from pathlib import Path

import numpy as np

from faceid.errors import ModelFileError

_FLOAT_SPECIALS = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class DlibReader:
    """Sequential reader over the bytes of one dlib ``.dat`` stream."""

    def __init__(self, data: bytes, name: str = "<memory>") -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path) -> DlibReader:
        path = Path(path)
        return cls(path.read_bytes(), name=path.name)

    @property
    def position(self) -> int:
        return self._pos

    @property
    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def _take(self, n: int) -> memoryview:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise ModelFileError(f"{self.name}: unexpected end of file at byte {self._pos}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: {message} (at byte {self._pos})")

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise self.error(f"bad integer control byte {control:#x}")
        value = int.from_bytes(self._take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent in _FLOAT_SPECIALS:
            return _FLOAT_SPECIALS[exponent]
        return math.ldexp(mantissa, exponent)

    def bool(self) -> bool:
        byte = self._take(1)[0]
        if byte not in (ord("0"), ord("1")):
            raise self.error(f"bad bool byte {byte:#x}")
        return byte == ord("1")

    def string(self) -> str:
        length = self.int()
        return bytes(self._take(length)).decode("latin-1")

    def expect_string(self, *allowed: str) -> str:
        value = self.string()
        if value not in allowed:
            raise self.error(f"expected {' or '.join(allowed)}, found {value!r}")
        return value

    def peek_string(self) -> str | None:
        """Return the string at the current position without consuming it, if one fits."""
        saved = self._pos
        try:
            length = self.int()
            if length <= 0 or length > 64:
                return None
            text = bytes(self._take(length)).decode("latin-1")
            return text if text.isascii() and text.isprintable() else None
        except ModelFileError:
            return None
        finally:
            self._pos = saved

    def float32_array(self, count: builtins.int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)

    def tensor(self) -> np.ndarray:
        """A ``resizable_tensor``: version 2, then n, k, nr, nc and raw float32 data."""
        version = self.int()
        if version != 2:
            raise self.error(f"unsupported tensor version {version}")
        shape = tuple(self.int() for _ in range(4))
        return self.float32_array(math.prod(shape)).reshape(shape)

    def alias_tensor(self) -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        version = self.int()
        if version != 1:
            raise self.error(f"unsupported alias_tensor version {version}")
        n, k, nr, nc = (self.int() for _ in range(4))
        return n, k, nr, nc

    def float_matrix(self) -> np.ndarray:
        """A ``dlib::matrix<float>`` : rows, cols, then each element as a float, row by row.

        dlib writes the dimensions negated to mark its current format; files from older versions have them
        positive (with the same element encoding), and dlib reads both.
        """
        rows, cols = self.int(), self.int()
        if rows < 0 or cols < 0:
            rows, cols = -rows, -cols
        if rows < 0 or cols < 0:
            raise self.error("bad matrix dimensions")
        return np.array([self.float() for _ in range(rows * cols)], dtype=np.float64).reshape(rows, cols)
