"""The exceptions purenet raises. Each subclasses the matching built-in, so
``except ValueError`` keeps working, while ``except PurenetError`` catches all."""


class PurenetError(Exception):
    """Base class of every error purenet raises on purpose."""


class ShapeError(PurenetError, ValueError):
    """An array has the wrong shape for the layer, primitive or data it meets."""


class DataError(PurenetError, ValueError):
    """Bad input data: NaN/inf, mismatched lengths, empty sets, labels out of range,
    missing or malformed files."""


class ConfigError(PurenetError, ValueError):
    """An unknown name (activation, initialiser, optimizer, ...) or a bad setting."""


class ModelFileError(PurenetError, ValueError):
    """A model or checkpoint file is corrupted, truncated or does not match."""
