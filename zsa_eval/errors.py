"""Exceptions a user can cause; the entry point turns them into one line and exit code 2."""


class UserError(Exception):
    """A mistake in the command, config or inputs; the message names the problem and the fix."""


class BadAudio(Exception):
    """One item cannot be evaluated (undecodable, empty, non-finite); it is skipped and recorded."""
