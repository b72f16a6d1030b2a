"""Words for the lines zsa-eval prints, shared by every stage."""


def counted(n: int, noun: str) -> str:
    """`1 clip`, `40 clips`, `2 classes`."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun}{'es' if noun.endswith(('s', 'x', 'ch', 'sh')) else 's'}"
