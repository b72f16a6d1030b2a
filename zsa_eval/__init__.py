"""zsa-eval: measure how well zero-shot audio classifiers label real datasets."""

import time

STARTED = time.perf_counter()  # process start, near enough: the summary line's wall time counts from here

__version__ = "0.1.0"
