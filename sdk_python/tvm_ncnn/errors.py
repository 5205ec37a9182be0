"""The one exception type users catch: its message names the file, op, shape or version at fault."""


class ModelError(Exception):
    """A model, artifact or input the SDK cannot use, with a one-line reason."""
