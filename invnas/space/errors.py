"""Problems found in a search-space file, and the error that carries all of them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a space: where (file and key path) and what.

    ``path`` is a key path such as ``stages[2].ops.involution.kernel_size[1]`` (empty for the
    file as a whole); ``message`` says what is wrong, the value, and what is allowed.
    """

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        return f"{where}: {self.message}"


class SpaceError(ValueError):
    """A search space that cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def closest(word: str, allowed: Iterable[str]) -> str | None:
    """The allowed word most like ``word`` (a likely misspelling of it), or None."""
    close = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    """``did you mean 'x'? `` for the closest allowed word, or an empty string."""
    match = closest(word, allowed)
    return f"did you mean {match!r}? " if match else ""


def describe(value: object, limit: int = 40) -> str:
    """A short text form of a YAML value for messages (YAML spelling, long values cut)."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        text = str(value)
        if len(text) > limit:
            return f"{text[:12]}... ({len(text)} digits)"
        return text
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "..."
        return repr(text)
    return f"a {type(value).__name__} ({str(value)[:limit]})"
