"""The one exception family of mdforecast.

The library raises these; the command line maps them to a one-line message and an exit code
(``MDForecastError`` → 1). Every message names the problem and the fix.
"""

__all__ = ["MDForecastError", "InputError", "StoreError", "FormatVersionError"]


class MDForecastError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 1


class InputError(MDForecastError):
    """A user-supplied file, option or value is missing, unreadable or inconsistent."""


class StoreError(MDForecastError):
    """A trajectory store is missing, corrupt, or would be overwritten."""


class FormatVersionError(StoreError):
    """A store or checkpoint was written by a newer mdforecast than this one."""
