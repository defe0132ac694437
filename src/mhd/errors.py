"""Errors the user can act on: each names the bad value, where it came from and what is allowed."""


class MHDError(Exception):
    """Base class: the command line prints the message alone, without a traceback."""


class ConfigError(MHDError):
    """A config key is unknown, has the wrong type, or asks for something impossible."""


class DataError(MHDError):
    """A dataset, split or graph artefact is missing, corrupt or inconsistent."""


class TrainingError(MHDError):
    """A run cannot go on: its loss stopped being a finite number, or it would not fit in memory."""
