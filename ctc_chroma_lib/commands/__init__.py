"""Subcommands of the ``ctc-chroma`` command line (see :mod:`ctc_chroma_lib.cli`)."""
