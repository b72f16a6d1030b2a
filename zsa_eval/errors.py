"""Exceptions a user can cause; the entry point turns them into one line and exit code 2."""


class UserError(Exception):
    """A mistake in the command, config or inputs; the message names the problem and the fix."""


class TaskUnavailable(UserError):
    """A task this machine or zsa-eval cannot run: its data neither here nor reachable (the Hugging Face Hub is
    not), or of a kind zsa-eval does not evaluate. A sweep (suite=maeb) skips its job with this line."""


class BadAudio(Exception):
    """One item cannot be evaluated; it is skipped and recorded under `reason` (a short category)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RunInterrupted(Exception):
    """Ctrl-C during a run: what finished is kept (`kept` says how much and where); the message says how to resume
    this run (a sweep's entry point says how to resume the sweep instead), or, before the run had a directory
    (`output_dir` None), that nothing was written."""

    def __init__(self, kept: str, output_dir: str | None):
        super().__init__(f"{kept}; resume with the same arguments plus output_dir={output_dir} resume=true"
                         if output_dir is not None else kept)
        self.kept = kept


class FinishedButFailed(Exception):
    """The run finished and wrote its results (`metrics`, summarized before the message), but failed a check."""

    def __init__(self, message: str, metrics: dict):
        super().__init__(message)
        self.metrics = metrics


class TooManySkips(FinishedButFailed, UserError):
    """Items were bad at a rate above max_skip_fraction: exit code 2."""


class GateFailed(FinishedButFailed):
    """A gate bound (for CI) failed: exit code 3."""
