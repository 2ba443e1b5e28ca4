"""Text that Postgres can store: no NUL characters, no unpaired surrogates.

JSON can carry both (`\\u0000`, a lone `\\ud800`), so every input path that parses
JSON checks its values before they reach a query.
"""

from __future__ import annotations

from typing import Any

Location = tuple[int | str, ...]


def first_unstorable(value: Any, loc: Location = ()) -> Location | None:
    """Return the location of the first string in `value` that cannot be stored, or None.

    `value` is parsed JSON (dicts, lists, scalars); the location is the path of keys
    and indexes to the string.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return loc
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return loc
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = first_unstorable(item, (*loc, key))
        if found is not None:
            return found
    return None
