"""One BLAS thread for the engine's small dense algebra.

The engine's matrices are (models + a few)^2, ~100-400 wide. OpenBLAS parallelises even
those, and on a busy 2-core host its spinning threads make a 100x100 inverse take ~100 ms
instead of ~0.4 ms (measured: a 1M-vote full recompute spent most of its fitting time there).
`one_blas_thread` caps BLAS at one thread for the duration of an engine call, via threadpoolctl
when it is installed (the engine has no hard dependency on it; without it, nothing changes and
the caller can set OPENBLAS_NUM_THREADS=1). The cap is process-wide while active (that is how
BLAS libraries work); nested uses are fine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def one_blas_thread() -> Iterator[None]:
    cm = threadpool_limits(1, user_api="blas") if threadpool_limits else nullcontext()
    with cm:
        yield


def single_blas(func: F) -> F:
    """Decorator form of `one_blas_thread`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
