"""zsa-eval: measure how well zero-shot audio classifiers label real datasets.

`zsa_eval.evaluate(dataset=..., model=..., overrides=[...])` runs an evaluation from Python; `zsa_eval.api` holds
the public API (the family classes a model of your own implements). Both load on first use, so that importing the
package (and `zsa-eval --help`) stays light."""

import time

from zsa_eval.errors import UserError

STARTED = time.perf_counter()  # process start, near enough: the summary line's wall time counts from here

__version__ = "0.1.0"
__all__ = ["Evaluation", "UserError", "__version__", "evaluate"]


def __getattr__(name: str):
    if name in ("evaluate", "Evaluation"):
        from zsa_eval import api

        return getattr(api, name)
    raise AttributeError(f"module 'zsa_eval' has no attribute {name!r}")
