"""JSON Schema errors in the words of the config file, not of Python.

jsonschema says `None is not of type 'object'` or `'x' does not match '^[A-Za-z]...$'`; a user
wants "must be an object, not null" and "'x' is not a Proxmox storage id". Every kind of error
the schema can raise (one per keyword it uses, plus the common ones) has its sentence here;
`messages(err)` returns them with the extra path to append (a missing or unknown field is named
as the field itself, not as its parent object).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import jsonschema

_TYPE_NAMES = {
    "object": "an object ({...})",
    "array": "a list ([...])",
    "string": "a string (text in double quotes)",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

# What each pattern of phoenix_vm_configs.schema.json stands for.
_PATTERNS = {
    "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$":
        "a valid image name (1-63 letters, digits, '.', '_', '-', starting with a letter or digit)",
    "^[A-Za-z][A-Za-z0-9_.-]*$":
        "a Proxmox storage id (a letter, then letters, digits, '_', '.', '-'; e.g. local-zfs)",
    "^https?://[^\\s]+$": "an http:// or https:// URL (without spaces)",
    "^((md5|sha1|sha224|sha256|sha384|sha512):[0-9a-fA-F]+|unverified)$":
        "ALGORITHM:HEXDIGEST with ALGORITHM one of md5, sha1, sha224, sha256, sha384, sha512 "
        "(e.g. sha256:ab12...), or \"unverified\"",
    "^[A-Za-z0-9][A-Za-z0-9._-]*\\.img$":
        "a file name ending in .img (letters, digits, '.', '_', '-')",
    "^(scsi|virtio|sata)[0-9]{1,2}$": "a disk interface such as scsi0, virtio0 or sata0",
    "^[A-Za-z0-9_.-]+$": "a CPU type (letters, digits, '_', '.', '-'; e.g. host or x86-64-v2-AES)",
    "^[A-Za-z0-9_.-]{1,15}$": "a bridge name (1-15 letters, digits, '_', '.', '-'; e.g. vmbr0)",
}

Extra = tuple[str | int, ...]


def describe(value: Any) -> str:
    """A JSON value as the user wrote it, with its kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return f"{value!r} (a number with a decimal point)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {json.dumps(shown)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _one_of(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _type(err: jsonschema.ValidationError) -> str:
    expected = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
    message = f"must be {_one_of([_TYPE_NAMES.get(t, t) for t in expected])}, not {describe(err.instance)}"
    if "integer" in expected and isinstance(err.instance, float) and err.instance.is_integer():
        message += f": write {int(err.instance)}"
    return message


def _unknown_fields(err: jsonschema.ValidationError) -> list[tuple[Extra, str]]:
    known = sorted(err.schema.get("properties", {}))
    out: list[tuple[Extra, str]] = []
    for key in err.instance:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(known)}"
        out.append(((key,), f"is not a known field ({hint})"))
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def messages(err: jsonschema.ValidationError) -> list[tuple[Extra, str]]:
    """[(path to append to err.absolute_path, sentence)] for one schema error."""
    kind, limit, value = err.validator, err.validator_value, err.instance
    if kind == "required":
        return [((key,), "is required") for key in limit if isinstance(value, dict) and key not in value]
    if kind == "additionalProperties" and isinstance(value, dict):
        return _unknown_fields(err)
    if kind == "type":
        return [((), _type(err))]
    if kind == "minimum":
        return [((), f"must be at least {limit}, not {describe(value)}")]
    if kind == "maximum":
        return [((), f"must be at most {limit}, not {describe(value)}")]
    if kind == "exclusiveMinimum":
        return [((), f"must be greater than {limit}, not {describe(value)}")]
    if kind == "exclusiveMaximum":
        return [((), f"must be less than {limit}, not {describe(value)}")]
    if kind == "multipleOf":
        return [((), f"must be a multiple of {limit}, not {describe(value)}")]
    if kind == "minLength":
        return [((), "must not be empty" if limit == 1 else f"must be at least {_count(limit, 'character')} long")]
    if kind == "maxLength":
        return [((), f"must be at most {_count(limit, 'character')} long (this one has {len(value)})")]
    if kind == "pattern":
        what = _PATTERNS.get(limit, f"of the expected form (regular expression {limit})")
        return [((), f"{json.dumps(value)} is not {what}")]
    if kind == "enum":
        return [((), f"must be one of {', '.join(json.dumps(v) for v in limit)}, not {describe(value)}")]
    if kind == "const":
        return [((), f"must be {json.dumps(limit)}, not {describe(value)}")]
    if kind == "minProperties":
        return [((), f"must have at least {_count(limit, 'entry')}".replace("entrys", "entries"))]
    if kind == "maxProperties":
        return [((), f"must have at most {_count(limit, 'entry')}".replace("entrys", "entries"))]
    if kind == "minItems":
        return [((), f"must list at least {_count(limit, 'item')}")]
    if kind == "maxItems":
        return [((), f"must list at most {_count(limit, 'item')}")]
    if kind == "uniqueItems":
        return [((), "lists the same item more than once")]
    if kind == "oneOf" and isinstance(value, dict):
        # An object meant for the object form (a feature's {"name", "params"}): say what is wrong
        # inside it rather than that it matches no form.
        inside = [e for e in err.context
                  if e.relative_schema_path and limit[e.relative_schema_path[0]].get("type") == "object"]
        if inside:
            return [(tuple(e.relative_path) + extra, message) for e in inside for extra, message in messages(e)]
    if kind == "oneOf" and any("params" in sub.get("properties", {}) for sub in limit):  # a feature
        return [((), 'expected a feature name or {"name": ..., "params": {...}}')]
    if kind in ("oneOf", "anyOf"):
        return [((), f"{describe(value)} matches none of the allowed forms")]
    if kind == "false" or kind is None:
        return [((), "is not allowed here")]
    return [((), err.message)]
