"""The one exception type users catch: its message names the file, op, shape or version at fault."""


class ModelError(Exception):
    """A model, artifact or input the SDK cannot use, with a one-line reason."""


def last_line(err: Exception) -> str:
    """The last line of an exception's text (TVM and tvm-ffi put the reason there, after a traceback), or its
    type name when it has no text."""
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__

