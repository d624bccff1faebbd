"""The one exception type a user should ever see from `dcgan`.

Anything raised as `UserError` is printed by the CLI as a single line
(`dcgan: error: ...`) with a non-zero exit status and no traceback. Raise it
for bad input (flags, paths, data, job dirs); let genuine bugs raise anything
else so that they keep their traceback.
"""


class UserError(Exception):
    """A problem the user can fix; its message is one self-contained line."""

    exit_code = 2


class JobDirConflict(UserError):
    """The job dir belongs to a different job (refused unless --overwrite)."""


class DataError(UserError):
    """The dataset is missing, empty or unreadable."""
