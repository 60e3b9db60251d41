"""Errors of the supervision workflows. Not found and conflicts reuse the registry's (the API turns
them into 404 and 409); `InputError` is well-formed input that is wrong against the store, and
names its field (422)."""

from __future__ import annotations

from cloud.registry.records import NotFound, RegistryConflict

__all__ = ["InputError", "NotFound", "WorkflowConflict"]


class InputError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class WorkflowConflict(RegistryConflict):
    """A step the record's state does not allow (accepting a finding nobody rectified)."""
