"""Exceptions with messages meant for users: one line naming the problem."""


class RetinaganError(Exception):
    """Base class; the CLI prints these as one line instead of a traceback."""


class ImageError(RetinaganError):
    """An input that is not a usable fundus photo or vessel map."""


class DatasetError(RetinaganError):
    """A dataset folder or label file that cannot be read as asked."""


class CheckpointError(RetinaganError):
    """A checkpoint folder that is missing, damaged, of the wrong kind or too new."""
