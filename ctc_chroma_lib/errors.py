"""The single exception type raised at the library's public boundary, and how text that
names files is shown on one line."""


class CTCChromaError(Exception):
    """Invalid input or configuration; the message names the offending value or file.

    The command-line interface prints the message as one line and exits with code 2.
    """


def printable(text: str) -> str:
    """``text`` with control characters and undecodable bytes escaped (``\\n``, ``\\udce9``).

    File names may contain newlines, or bytes that are not UTF-8 (which Python keeps as
    surrogate escapes); printed raw they break a one-line message or a table, or fail to
    print at all.
    """
    return ''.join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))
