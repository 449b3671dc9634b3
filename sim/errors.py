"""Errors raised by the simulator library. Only the CLI turns them into exit codes."""
from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A hardware config file (or the data built from one) is not valid.

    The message names the file, the field (a dotted path such as ``level[2].capacity_words``), the
    offending value and what is allowed. The same facts are kept as attributes for programs:
    ``file`` (str or None), ``field`` (dotted path or None) and ``value`` (the raw value or None).
    """

    def __init__(
        self, message: str, *, file: str | None = None, field: str | None = None, value: Any = None
    ) -> None:
        super().__init__(message)
        self.file = file
        self.field = field
        self.value = value


class UsageError(ValueError):
    """A command-line value (a layer spec, a network name, an option) is not valid."""
