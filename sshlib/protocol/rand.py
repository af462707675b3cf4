"""The randomness the core is given (it never makes its own)."""

from __future__ import annotations

from collections.abc import Callable

#: rng(n) -> n unpredictable bytes; the front-ends pass os.urandom.
Random = Callable[[int], bytes]
