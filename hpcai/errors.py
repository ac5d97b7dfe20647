"""Errors raised by hpcai.

Every error is a subclass of :class:`HpcaiError` *and* of the builtin exception a
caller would expect (``TypeError`` for dtype problems, ``ValueError`` for bad values,
``IndexError`` for bad indices, ...), so generic ``except ValueError`` code keeps
working. Messages name the function, what was given, what was expected and the fix.
"""

from __future__ import annotations

__all__ = [
    "ArrayIndexError",
    "ChecksumError",
    "CredentialsError",
    "EndpointUnreachableError",
    "AuditError",
    "AxisError",
    "BackendUnavailableError",
    "ConfigError",
    "DLPackUnsupportedError",
    "DTypeError",
    "DeviceMismatchError",
    "EnergyBudgetError",
    "ForeignArrayError",
    "HpcaiError",
    "InvalidArgumentError",
    "LinAlgError",
    "MeterError",
    "OutOfDeviceMemoryError",
    "PathEscapeError",
    "PlacementError",
    "PluginError",
    "PolicySyntaxError",
    "ResidencyError",
    "ScalarOverflowError",
    "ShapeError",
    "StorageError",
    "StorageExistsError",
    "StorageNotFoundError",
    "TransferForbiddenError",
    "UnknownDeviceError",
    "UnknownEndpointError",
    "UnsupportedDtypeError",
]


class HpcaiError(Exception):
    """Base class of every error hpcai raises on purpose."""


class InvalidArgumentError(HpcaiError, ValueError):
    """An argument has a valid type but an invalid value."""


class ShapeError(InvalidArgumentError):
    """Shapes are incompatible (broadcasting, reshape, matmul dimensions, ...)."""


class LinAlgError(InvalidArgumentError):
    """A linear-algebra routine failed (singular matrix, no convergence, ...)."""


class ArrayIndexError(HpcaiError, IndexError):
    """An index is out of bounds or of an unsupported kind."""


class AxisError(ShapeError, ArrayIndexError):
    """An axis argument is out of range for the array's number of dimensions."""


class DTypeError(HpcaiError, TypeError):
    """An array has a data type the operation does not accept."""


class ForeignArrayError(HpcaiError, TypeError):
    """A foreign array (NumPy, JAX, CuPy, ...) was mixed with an hpcai array."""


class DLPackUnsupportedError(HpcaiError, AttributeError):
    """An object given to ``xp.from_dlpack`` does not implement DLPack (``__dlpack__``)."""


class ScalarOverflowError(HpcaiError, OverflowError):
    """A Python scalar does not fit the array's data type."""


class UnknownDeviceError(HpcaiError, ValueError):
    """A device string names no device that exists."""


class DeviceMismatchError(HpcaiError, ValueError):
    """An operation mixes arrays that live on different devices."""


class TransferForbiddenError(HpcaiError, RuntimeError):
    """Data movement was attempted inside ``xp.transfers(forbid=True)``."""


class OutOfDeviceMemoryError(HpcaiError, MemoryError):
    """An allocation exceeds a device's memory capacity."""


class UnsupportedDtypeError(DTypeError):
    """A device has no native support for a data type (e.g. float64 without FP64)."""


class BackendUnavailableError(HpcaiError, ImportError):
    """A backend's library is not installed or has no device."""


class PluginError(HpcaiError, RuntimeError):
    """A backend plugin is broken (import error, wrong type, ...)."""


class ConfigError(HpcaiError, ValueError):
    """A configuration file or value is invalid."""


class PolicySyntaxError(ConfigError):
    """A residency-policy expression does not parse.

    ``column`` is the 1-based position of the problem in ``text``, the expression.
    """

    def __init__(self, message: str, *, column: int | None = None, text: str | None = None) -> None:
        super().__init__(message)
        self.column = column
        self.text = text


class ResidencyError(HpcaiError, PermissionError):
    """A residency policy forbids this movement, export, store or computation.

    ``decision`` is the :class:`hpcai.residency.Decision` that refused it, when there is one.
    """

    def __init__(self, message: str, *, decision: object = None) -> None:
        super().__init__(message)
        self.decision = decision


class AuditError(ResidencyError):
    """The audit log cannot be written or read; operations that must be recorded are refused."""


class StorageError(HpcaiError, OSError):
    """A storage endpoint operation failed (the message names the endpoint, never a secret)."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """A path does not exist on a storage endpoint."""


class StorageExistsError(StorageError, FileExistsError):
    """A destination exists and the operation would replace it without ``overwrite=True``."""


class UnknownEndpointError(HpcaiError, ValueError):
    """A URL or name refers to a storage endpoint that the configuration does not define."""


class CredentialsError(StorageError, PermissionError):
    """An endpoint's credentials are missing (an unset environment variable) or were rejected."""


class EndpointUnreachableError(StorageError, ConnectionError):
    """A storage endpoint could not be reached, even after retries with backoff."""


class ChecksumError(StorageError, ValueError):
    """Stored data failed its checksum (or a chunk is missing): it is never returned silently."""


class PathEscapeError(StorageError, PermissionError):
    """A path would leave its endpoint's root (``..``, an absolute path or an escaping symlink)."""


class PlacementError(HpcaiError, RuntimeError):
    """No device can run an operation (every candidate denied, too small or lacking a dtype)."""


class EnergyBudgetError(HpcaiError, RuntimeError):
    """A run would exceed an energy or CO2 budget (refused before any byte moves)."""


class MeterError(HpcaiError, OSError):
    """An energy meter could not be read (missing, permission denied, malformed counter)."""
