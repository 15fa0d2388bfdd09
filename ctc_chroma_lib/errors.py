"""The single exception type raised at the library's public boundary."""


class CTCChromaError(Exception):
    """Invalid input or configuration; the message names the offending value or file.

    The command-line interface prints the message as one line and exits with code 2.
    """
