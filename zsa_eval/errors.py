"""Exceptions a user can cause; the entry point turns them into one line and exit code 2."""


class UserError(Exception):
    """A mistake in the command, config or inputs; the message names the problem and the fix."""


class BadAudio(Exception):
    """One item cannot be evaluated; it is skipped and recorded under `reason` (a short category)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RunInterrupted(Exception):
    """Ctrl-C during a run: what finished is kept (`kept` says how much and where); the message says how to resume
    this run (a sweep's entry point says how to resume the sweep instead)."""

    def __init__(self, kept: str, output_dir: str):
        super().__init__(f"{kept}; resume with the same arguments plus output_dir={output_dir} resume=true")
        self.kept = kept


class GateFailed(Exception):
    """The run finished and wrote its results, but a gate bound (for CI) failed: exit code 3."""
