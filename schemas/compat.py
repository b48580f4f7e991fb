"""Keeping stores written by earlier versions valid when a config option is added.

A stage is skipped when the digest of its inputs (its config section among them) equals the one
recorded in the store.  A new option would change that digest for every stored item, so every stage
that reads it, and everything after, would run again after an upgrade although the old behaviour is
still what the option's default does.  An option added after stores existed therefore declares the
value at which it behaves as the code did before it existed::

    new_option: int = Field(1, ..., json_schema_extra=as_before(1))

At that value :func:`tasks.store.config_values` leaves it out of the digest; at any other value it
enters.  Options that existed when stores were first written need no declaration.
"""

from __future__ import annotations

from typing import Any

#: Key of a field's ``json_schema_extra`` holding its "behaves as before" value.
AS_BEFORE = "behaves_as_before"


def as_before(value: Any) -> dict[str, Any]:
    """``json_schema_extra`` of an option that behaves as the earlier code at ``value``."""
    return {AS_BEFORE: value}
