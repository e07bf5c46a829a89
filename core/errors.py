"""Errors a user can fix: the CLI prints them as one line on stderr and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (a file, a row, a flag, a config key). The message names what is wrong."""
