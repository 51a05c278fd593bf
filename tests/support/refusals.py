"""Expecting a refusal: an error crev raises, seen as the registry error a client gets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crev.errors import CrevError, RegistryError, registry_error


class Refusal:
    """The registry error a `refused` block raised, once it has raised it."""

    error: RegistryError | None = None
    raised: CrevError | None = None

    def __getattr__(self, name: str) -> Any:
        if self.error is None:
            raise AssertionError("the block raised nothing")
        return getattr(self.error, name)


@contextmanager
def refused(kind: type[CrevError] = CrevError) -> Iterator[Refusal]:
    """Expect the block to raise a `kind` of CrevError; the refusal holds what a client would
    be answered for it (`status`, `code`, `message`, `detail`, `headers`, `body()`)."""
    refusal = Refusal()
    try:
        yield refusal
    except kind as error:
        refusal.raised = error
        refusal.error = registry_error(error)
    else:
        raise AssertionError(f"the block raised no {kind.__name__}")
