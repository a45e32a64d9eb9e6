"""Errors that reach the operator as one clear line."""


class AtalayaError(Exception):
    """An error the command line prints as one line, without a traceback.

    The message must say what went wrong and, where possible, what to do.
    """
