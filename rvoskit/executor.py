"""One executor for every per-video stage: in this process, a local process pool, or Ray.

A stage describes its work as a module-level function and a sequence of work units (one video, or
one frame for ``corrupt``); :func:`imap` runs the function over the units and yields
``(unit, result)`` pairs. The stage keeps its own resume and atomic-output rules (it skips finished
units before calling :func:`imap`, and each unit's output is written to a temporary name and moved
into place when complete), so the three executors give the same outputs:

- ``local``: in this process, in order. The default, and what ``--workers 1`` means.
- ``process``: ``workers`` local processes (``concurrent.futures.ProcessPoolExecutor``). Workers
  die with the process that started them (Linux ``PR_SET_PDEATHSIG``), use one OpenCV thread each,
  and at most ``window`` units are in flight, so a streamed input is not read ahead into memory.
- ``ray``: one Ray task per unit, on a Ray cluster (``ray_address``, e.g. ``auto`` or
  ``ray://head:10001``) or, without an address, on an existing connection or a new local
  instance. Each task asks for ``num_cpus`` CPUs and ``num_gpus`` GPUs. Every node needs rvoskit
  installed and the same paths (a shared filesystem): tasks read the dataset and write their
  outputs by path.

The first failed unit cancels the units not yet started and is raised (a Ray task's error is
unwrapped to the stage's own :class:`~rvoskit.errors.RvosError`), unless ``on_error`` is given:
then it is called with ``(unit, exception)`` and the run goes on.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from rvoskit.errors import RvosError

KINDS = ("local", "process", "ray")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Executor:
    """Where per-unit work runs (picklable; see the module docstring).

    Attributes:
        kind: ``"local"``, ``"process"`` or ``"ray"``.
        workers: processes of a ``process`` pool (``local``: 1; ``ray``: ignored, the cluster's
            resources decide).
        ray_address: ``ray.init(address=...)``; None: an existing connection, else a local instance.
        num_cpus: CPUs each Ray task asks for.
        num_gpus: GPUs each Ray task asks for (0 on CPU-only clusters).
    """

    kind: str = "local"
    workers: int = 1
    ray_address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def check(self) -> Executor:
        """Raise :class:`RvosError` for an unknown kind or a worker count below 1; return self."""
        if self.kind not in KINDS:
            raise RvosError(f"{self.kind!r}: use one of {', '.join(KINDS)}", item="--executor")
        if int(self.workers) < 1:
            raise RvosError(f"must be >= 1, got {self.workers}", item="--workers")
        if self.ray_address and self.kind != "ray":
            raise RvosError("--ray-address needs --executor ray", item="--ray-address")
        return self

    def for_units(self, n: int) -> Executor:
        """This executor for ``n`` work units: ``local`` instead of a process pool when ``n <= 1``
        (a pool's start-up buys nothing for a single unit); otherwise self."""
        return Executor() if self.kind == "process" and n <= 1 else self

    def describe(self) -> str:
        """One-word description for run summaries: ``local``, ``process x4``, ``ray (auto)``."""
        if self.kind == "process":
            return f"process x{self.workers}"
        if self.kind == "ray":
            return f"ray ({self.ray_address or 'local'})"
        return "local"


def resolve_executor(executor: str | Executor | None = None, workers: int = 1, ray_address: str | None = None, **resources: float) -> Executor:
    """The :class:`Executor` a stage's options mean.

    ``executor=None`` picks ``local`` for ``workers == 1`` and ``process`` otherwise (so
    ``--workers 4`` alone keeps meaning four processes). An :class:`Executor` is returned as is.
    ``resources``: ``num_cpus`` / ``num_gpus`` of each Ray task.

    Raises:
        RvosError: unknown kind, ``workers < 1``, ``--ray-address`` without ``--executor ray``,
            ``--executor local`` with ``workers > 1``.
    """
    if isinstance(executor, Executor):
        return executor.check()
    workers = int(workers)
    kind = executor or ("local" if workers <= 1 else "process")
    if kind == "local" and workers > 1:
        raise RvosError(f"--executor local runs in this process; use --executor process for {workers} workers", item="--workers")
    return Executor(kind, workers, ray_address, **resources).check()


# -- worker processes --------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process receive SIGTERM when the process that started it exits (Linux only).

    Called first in every ``process`` worker, so that killing the main process (even with
    SIGKILL) does not leave workers running. If the parent is already gone, exit at once.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: nothing to do
            pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def _worker_init(parent_pid: int | None, initializer: Callable[..., None] | None, initargs: tuple, forked: bool = False) -> None:
    """Initializer of ``process`` workers: die with the parent, one OpenCV thread, the stage's own.

    A forked worker leaves OpenCV's thread count alone: ``cv2.setNumThreads`` in a child forked from
    a parent whose OpenCV pool has run waits for pool threads that do not exist in the child (hangs).
    """
    die_with_parent(parent_pid)
    if not forked:
        _one_thread()
    if initializer is not None:
        initializer(*initargs)


def _one_thread() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)  # one unit per process: OpenCV threads would oversubscribe the cores
    except ImportError:  # pragma: no cover
        pass


_RAY_INITIALIZED: set = set()


def _ray_call(fn: Callable, initializer: Callable | None, initargs: tuple, unit: Any) -> Any:
    """Body of a Ray task: the stage's initializer once per worker process, then ``fn(unit)``."""
    key = (initializer, initargs)
    if key not in _RAY_INITIALIZED:
        _one_thread()
        if initializer is not None:
            initializer(*initargs)
        _RAY_INITIALIZED.add(key)
    return fn(unit)


# -- the map -----------------------------------------------------------------------------------


def imap(
    fn: Callable[[T], R],
    units: Iterable[T],
    executor: Executor | None = None,
    *,
    ordered: bool = False,
    window: int | None = None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    on_error: Callable[[T, BaseException], None] | None = None,
    start_method: str = "spawn",
) -> Iterator[tuple[T, R]]:
    """Run ``fn`` over ``units`` and yield ``(unit, fn(unit))`` as units finish.

    Args:
        fn: a module-level function (it is pickled by reference for ``process`` and ``ray``).
        units: work units (picklable); consumed lazily, at most ``window`` ahead.
        executor: where to run (default: ``local``).
        ordered: yield in the order of ``units`` (else in order of completion).
        window: most units submitted and not yet yielded (default ``2 * workers`` for a process
            pool, ``2 *`` the cluster's task slots for Ray).
        initializer: called with ``initargs`` once in each worker process (not in ``local``).
        on_error: called with ``(unit, exception)`` for a failed unit instead of raising;
            the unit is not yielded. Without it the first failure cancels the rest and is raised.
        start_method: ``spawn`` (default: safe with OpenCV / Arrow threads in the parent) or
            ``fork`` (workers start at once; a script needs no ``__main__`` guard); ``fork`` turns
            into ``spawn`` once Ray has been imported in this process.

    Raises:
        RvosError: the executor's options are wrong, Ray is missing or unreachable, or a unit
            failed with it (without ``on_error``); any other exception of ``fn`` as is.
    """
    executor = (executor or Executor()).check()
    if executor.kind == "local":
        yield from _imap_local(fn, units, on_error)
    elif executor.kind == "process":
        yield from _imap_process(fn, units, executor, ordered, window, initializer, initargs, on_error, start_method)
    else:
        yield from _imap_ray(fn, units, executor, ordered, window, initializer, initargs, on_error)


def _imap_local(fn, units, on_error):
    for unit in units:
        try:
            value = fn(unit)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(unit, exc)
            continue
        yield unit, value


def _imap_process(fn, units, executor, ordered, window, initializer, initargs, on_error, start_method):
    import multiprocessing

    workers = max(1, int(executor.workers))
    window = max(1, window or 2 * workers)
    if start_method == "fork" and "ray" in sys.modules:
        start_method = "spawn"  # Ray's threads (they outlive ray.shutdown) can deadlock a forked child
    ctx = multiprocessing.get_context(start_method)
    it = iter(units)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(), initializer, initargs, start_method == "fork"))
    pending: collections.deque | set = collections.deque() if ordered else set()
    try:
        while True:
            while len(pending) < window and (unit := next(it, _END)) is not _END:
                fut = pool.submit(fn, unit)
                fut.unit = unit  # type: ignore[attr-defined]
                pending.append(fut) if ordered else pending.add(fut)
            if not pending:
                break
            if ordered:
                done = [pending.popleft()]
                wait(done)
            else:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    value = fut.result()
                except Exception as exc:
                    if on_error is None:
                        raise
                    on_error(fut.unit, exc)
                    continue
                yield fut.unit, value
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # finished units keep their outputs
        raise
    pool.shutdown(wait=True)


_END = object()


def ray_connect(address: str | None) -> Any:
    """Import Ray and connect (``address``, an existing connection, or a new local instance).

    Raises:
        RvosError: Ray is not installed, or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError:
        raise RvosError("--executor ray needs the 'ray' package (pip install 'rvoskit[ray]')", item="--executor") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as exc:
            raise RvosError(f"cannot connect to Ray ({address or 'local'}): {exc}", item="--ray-address") from None
    return ray


def _unwrap(exc: BaseException) -> BaseException:
    """A Ray task error's cause (the stage's own exception), else the error itself."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _imap_ray(fn, units, executor, ordered, window, initializer, initargs, on_error):
    ray = ray_connect(executor.ray_address)
    remote = ray.remote(num_cpus=executor.num_cpus, num_gpus=executor.num_gpus, max_retries=0)(_ray_call)
    if window is None:
        res = ray.cluster_resources()
        slots = res.get("CPU", 1) / max(executor.num_cpus, 1e-9)
        if executor.num_gpus > 0:
            slots = min(slots, res.get("GPU", 0) / executor.num_gpus)
        window = 2 * max(1, int(slots))
    it = iter(units)
    pending: list = []
    unit_of: dict = {}
    try:
        while True:
            while len(pending) < window and (unit := next(it, _END)) is not _END:
                ref = remote.remote(fn, initializer, initargs, unit)
                unit_of[ref] = unit
                pending.append(ref)
            if not pending:
                break
            if ordered:
                done = [pending.pop(0)]
            else:
                done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                unit = unit_of.pop(ref)
                try:
                    value = ray.get(ref)
                except Exception as exc:
                    cause = _unwrap(exc)
                    if on_error is None:
                        raise cause from None
                    on_error(unit, cause)
                    continue
                yield unit, value
    except BaseException:
        for ref in pending:
            try:
                ray.cancel(ref)
            except Exception:  # pragma: no cover  (already finished)
                pass
        raise


__all__ = ["KINDS", "Executor", "die_with_parent", "imap", "ray_connect", "resolve_executor"]
