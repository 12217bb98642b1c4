"""Exceptions raised by faceid. Every error a user can cause derives from :class:`FaceidError`."""

from __future__ import annotations


class FaceidError(Exception):
    """Base class for errors faceid reports to its users."""


class BadInputError(FaceidError, ValueError):
    """The caller gave something faceid cannot use (maps to HTTP 4xx / CLI exit code 2)."""


class ImageError(BadInputError):
    """An image could not be read: not an image, truncated, empty, too large or of an unknown type."""


class ImageTooLargeError(ImageError):
    """The image's pixel count is over the configured limit (decompression bomb guard)."""


class NoFaceError(BadInputError):
    """No face was found where one was required."""


class MultipleFacesError(BadInputError):
    """Several faces were found where exactly one was required."""


class ModelFileError(FaceidError):
    """A model file is missing, truncated, tampered with, or not in the expected format."""


class ModelUnavailableError(FaceidError):
    """A model or runtime was asked for but is not installed or set up on this machine."""


class NotFoundError(BadInputError):
    """A person, face or event that the caller named does not exist in the store."""


class ConflictError(BadInputError):
    """The change would break a rule of the store (a name or external id already taken, an ambiguous name...)."""


class ArchiveError(BadInputError):
    """A gallery archive is corrupt, tampered with, truncated or of an unknown version; nothing was imported."""


class StoreError(FaceidError):
    """The store could not be opened or used (unreachable database, unsupported schema, missing extension)."""
