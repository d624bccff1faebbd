"""The exceptions a user should ever see from `dcgan`, and their exit statuses.

Anything raised as a `JobError` is printed by the CLI as a single line
(`dcgan: error: ...`) with the class's exit status and no traceback. Raise
`UserError` for input the user must fix (flags, paths, data, job dirs) and
`StorageUnavailable` for infrastructure that failed after our own retries;
let genuine bugs raise anything else so that they keep their traceback.

Exit statuses (the launchers' retry policies are built on them):

    0    done
    2    bad input: retrying cannot help (UserError)
    3    training diverged: retrying cannot help (TrainingDiverged)
    75   storage unreachable after retries: transient, retry later (StorageUnavailable;
         75 is EX_TEMPFAIL from sysexits.h); the job resumes where it stopped
    130  interrupted by Ctrl-C
    other  a crash (out of memory, killed, a bug): retried by the launchers
"""

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_TRANSIENT = 75


class JobError(Exception):
    """A failure reported as one self-contained line and an exit status."""

    exit_code = 1


class UserError(JobError):
    """A problem the user can fix; its message is one self-contained line."""

    exit_code = EXIT_BAD_INPUT


class StorageUnavailable(JobError):
    """Storage did not answer (or answered 5xx/429) through all our retries: try the job again later."""

    exit_code = EXIT_TRANSIENT


class JobDirConflict(UserError):
    """The job dir belongs to a different job (refused unless --overwrite)."""


class DataError(UserError):
    """The dataset is missing, empty or unreadable."""


class UnsafeObjectName(UserError):
    """A bucket object name that cannot be a local path under the staging folder ('..', empty segments)."""
