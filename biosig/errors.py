"""The one exception type that reaches users as a single clear line."""


class BiosigError(Exception):
    """A problem with the user's input or settings.

    The CLI prints ``error: <message>`` on one line and exits non-zero; the message should
    name the file (or option) and say what is wrong with it.
    """
