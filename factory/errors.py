"""Named exceptions, one per real failure class.

Configuration and environment problems fail fast with these; problems in *data* (a model
answer that does not parse, a row without gold) are never exceptions: they become drop reasons.
Every message names the thing that is wrong and how to fix it.
"""


class FactoryError(Exception):
    """Base class: the CLI prints these as one clear message instead of a traceback."""


class RecipeError(FactoryError):
    """A recipe is unknown, malformed, or has an unknown key or a bad value."""


class ProblemSourceError(FactoryError):
    """A problem file or dataset cannot be read (missing, malformed, wrong columns)."""


class TeacherLoadError(FactoryError):
    """A teacher model or its backend library cannot be loaded."""


class TeacherError(FactoryError):
    """A loaded teacher stopped working mid-run (e.g. its client process died)."""


class RunDirError(FactoryError):
    """The run directory cannot be used (already holds a run, unreadable manifest)."""


class LockError(RunDirError):
    """Another factory process holds the run directory."""
