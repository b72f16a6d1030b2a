"""zsa-eval: measure how well zero-shot audio classifiers label real datasets."""

__version__ = "0.1.0"
