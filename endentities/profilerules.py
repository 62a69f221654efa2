"""Matching subject DN and alt-name values against an end entity profile's field instances.

EJBCA matches the values of one type to the profile's instances of that type *by position*: the i-th OU of
the DN fills the i-th OU field of the profile (from the end with reverse checks). An empty value
(``OU=``) is a placeholder that only takes a position, so "CN=Foo,OU=Bar1,OU=,OU=,OU=,OU=Bar2" reaches the
fifth OU field while "CN=Foo,OU=Bar1,OU=Bar2" leaves it empty (and a required fifth field then fails with
"Subject DN field 'ORGANIZATIONALUNIT' must exist.").

Validation regexes use Java Pattern syntax and Java's ``matches()`` (the whole value must match); the
translation to Python ``re`` is cached per pattern. An instance may also name a field validator, a class by dotted
path (EJBCA's plug-in field restrictions, the way SCEP challenge validators are named): its
``validate(value, field_type)`` raises ``ValueError`` with the reason to refuse a value.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import import_module
from typing import Any, Protocol

from pki.errors import ValidationError

# Forbidden characters live in the core (a CA's DN obeys them too); re-exported for the end entity rules.
from pki.forbidden import (  # noqa: F401
    DEFAULT_FORBIDDEN_CHARACTERS,
    check_forbidden,
    forbidden_characters,
    has_forbidden,
)

from .fields import FieldType

# Java-only regex constructs and their Python spelling. POSIX classes of java.util.regex are ASCII.
_JAVA_CLASSES = {
    r"\p{Lower}": "a-z", r"\p{Upper}": "A-Z", r"\p{ASCII}": r"\x00-\x7f", r"\p{Alpha}": "A-Za-z",
    r"\p{Digit}": "0-9", r"\p{Alnum}": "A-Za-z0-9", r"\p{Punct}": r"!-/:-@\[-`{-~", r"\p{Space}": r" \t\n\x0b\f\r",
    r"\p{XDigit}": "0-9A-Fa-f", r"\p{Blank}": r" \t", r"\p{Cntrl}": r"\x00-\x1f\x7f",
    r"\p{Graph}": r"!-~", r"\p{Print}": r" -~",
}
_UNICODE_CLASSES = {r"\p{L}": r"[^\W\d_]", r"\p{IsAlphabetic}": r"[^\W\d_]", r"\p{N}": r"\d", r"\p{Nd}": r"\d"}


def _translate_java(pattern: str) -> str:
    """Java Pattern -> Python re for what differs in practice: POSIX/Unicode classes, \\z, \\Z."""
    out = pattern
    if "&&" in out:
        raise ValueError("character class intersection (&&) is not supported")
    for java, py in _JAVA_CLASSES.items():
        out = out.replace("[" + java + "]", "[" + py + "]").replace(java, "[" + py + "]")
        neg = java.replace(r"\p", r"\P")
        out = out.replace(neg, "[^" + py + "]")
    for java, py in _UNICODE_CLASSES.items():
        out = out.replace(java, py)
    return out.replace(r"\z", r"\Z")


@lru_cache(maxsize=1024)
def compile_java_regex(pattern: str) -> re.Pattern[str]:
    """Compile a profile validation regex (Java syntax); ``ValueError`` names what is wrong."""
    try:
        return re.compile(_translate_java(pattern))
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def java_matches(pattern: str, value: str) -> bool:
    """Java's ``Pattern.matches(pattern, value)``: the whole value must match; ``(?i)`` works as in Java."""
    return compile_java_regex(pattern).fullmatch(value) is not None


def options_of(instance: dict[str, Any]) -> list[str]:
    """The ';'-separated default values of a field instance (several = a drop-down)."""
    raw = instance.get("value") or ""
    return [v.strip() for v in raw.split(";")] if raw else []


def default_of(instance: dict[str, Any]) -> str:
    """The value a form pre-fills and a merge adds: the first option."""
    opts = options_of(instance)
    return opts[0] if opts else ""


class FieldValidator(Protocol):
    """A plug-in check of one field's values: instantiated once per process (no arguments)."""

    def validate(self, value: str, field_type: str) -> None:
        """Return to accept ``value`` of ``field_type`` (``CN``, ``DNSNAME``, ...); raise ``ValueError`` to refuse
        it, with the reason the caller is shown."""


@lru_cache(maxsize=64)
def load_field_validator(path: str) -> FieldValidator:
    """The validator at dotted ``path``; ``ValueError`` when it cannot be imported or has no ``validate``."""
    module_name, _, cls_name = path.rpartition(".")
    try:
        cls = getattr(import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"field validator '{path}' cannot be imported") from None
    if not isinstance(cls, type) or not callable(getattr(cls, "validate", None)):
        raise ValueError(f"'{path}' is not a field validator class (it needs a validate(value, field_type) method)")
    return cls()


def _run_validator(ftype: FieldType, path: str, value: str, field: str) -> None:
    try:
        validator = load_field_validator(path)
    except ValueError as exc:
        raise ValidationError(f"{_label(ftype)} '{ftype.ejbca_name}': {exc}.", field=field) from None
    try:
        validator.validate(value, ftype.key)
    except ValueError as exc:
        raise ValidationError(f"{_label(ftype)} '{ftype.ejbca_name}' value '{value}' is refused by its validator: "
                              f"{exc}", field=field) from None


def _label(ftype: FieldType) -> str:
    return "Subject DN field" if ftype.kind == "dn" else "Subject alternative name field"


def check_value(ftype: FieldType, instance: dict[str, Any] | None, value: str, field: str) -> None:
    """One non-empty value against its type's built-in format and its instance's rules."""
    if ftype.max_length and len(value) > ftype.max_length and ftype.pattern is None:
        raise ValidationError(
            f"{_label(ftype)} '{ftype.ejbca_name}' is longer than {ftype.max_length} characters.", field=field
        )
    if ftype.pattern and compile_java_regex(ftype.pattern).fullmatch(value) is None:
        raise ValidationError(
            f"{_label(ftype)} '{ftype.ejbca_name}' value '{value}' is not of the form "
            f"{ftype.hint or ftype.pattern}.", field=field,
        )
    if instance is None:
        return
    if not instance.get("modifiable", True):
        allowed = options_of(instance)
        if value not in allowed:
            shown = "' or '".join(allowed) if allowed else ""
            raise ValidationError(
                f"{_label(ftype)} '{ftype.ejbca_name}' is not modifiable: the value must be '{shown}', "
                f"not '{value}'.", field=field,
            )
    regex = instance.get("validation")
    if regex:
        try:
            ok = compile_java_regex(regex).fullmatch(value) is not None
        except ValueError as exc:
            raise ValidationError(f"{_label(ftype)} '{ftype.ejbca_name}': {exc}", field=field) from None
        if not ok:
            raise ValidationError(
                f"{_label(ftype)} '{ftype.ejbca_name}' value '{value}' does not match the validation regex "
                f"'{regex}'.", field=field,
            )
    if instance.get("validator"):
        _run_validator(ftype, instance["validator"], value, field)


def match_instances(
    ftype: FieldType, instances: list[dict[str, Any]], values: list[str], *, reverse: bool, field: str
) -> list[str]:
    """Assign the values of one type to the profile's instances of that type by position and check them.

    Returns the non-empty values in order. Raises when there are more values than instances, when a
    required instance gets no value, or when a value breaks its instance's rules."""
    n_values, n_instances = len(values), len(instances)
    if n_values > n_instances:
        if not instances:
            raise ValidationError(
                f"{_label(ftype)} '{ftype.ejbca_name}' is not allowed by the end entity profile.", field=field
            )
        raise ValidationError(
            f"Wrong number of {ftype.ejbca_name} fields: {n_values} given, the end entity profile has "
            f"{n_instances}.", field=field,
        )
    offset = n_instances - n_values if reverse else 0  # reverse checks: the last value meets the last field
    out: list[str] = []
    for i, instance in enumerate(instances):
        j = i - offset
        value = values[j] if 0 <= j < n_values else ""
        if not value:
            if instance.get("required"):
                raise ValidationError(f"{_label(ftype)} '{ftype.ejbca_name}' must exist.", field=field)
            continue
        check_value(ftype, instance, value, field)
        out.append(value)
    return out


# --- precompiled rules (the hot path of validating many end entities against one profile) ------------------

class TypeRules:
    """The instances of one field type in a profile, with their checks prepared once: the type's built-in
    format, each instance's required flag, allowed values (not modifiable) and compiled validation regex.

    :meth:`match` only answers the common case (every value passes): anything else returns None and the
    caller runs :func:`match_instances`, which finds the rule broken and raises its exact message."""

    __slots__ = ("ftype", "instances", "max_length", "type_re", "rules")

    def __init__(self, ftype: FieldType, instances: list[dict[str, Any]]) -> None:
        self.ftype = ftype
        self.instances = instances
        self.max_length = ftype.max_length if ftype.pattern is None else None
        self.type_re = compile_java_regex(ftype.pattern) if ftype.pattern else None
        rules: list[tuple[bool, frozenset[str] | None, re.Pattern[str] | None]] | None = []
        for inst in instances:
            if inst.get("validator"):  # a plug-in check: the full path (check_value) runs it
                rules = None
                break
            allowed = None if inst.get("modifiable", True) else frozenset(options_of(inst))
            regex = inst.get("validation")
            try:
                compiled = compile_java_regex(regex) if regex else None
            except ValueError:  # a broken regex: the slow path names it
                rules = None
                break
            rules.append((bool(inst.get("required")), allowed, compiled))
        self.rules = tuple(rules) if rules is not None else None

    def match(self, values: list[str], reverse: bool) -> list[str] | None:
        """:func:`match_instances` when every value passes; None when some rule may be broken."""
        rules = self.rules
        n_values = len(values)
        if rules is None or n_values > len(rules):
            return None
        offset = len(rules) - n_values if reverse else 0
        max_length, type_re = self.max_length, self.type_re
        out: list[str] = []
        for i, (required, allowed, regex) in enumerate(rules):
            j = i - offset
            value = values[j] if 0 <= j < n_values else ""
            if not value:
                if required:
                    return None
                continue
            if ((max_length and len(value) > max_length) or (type_re is not None and type_re.fullmatch(value) is None)
                    or (allowed is not None and value not in allowed)
                    or (regex is not None and regex.fullmatch(value) is None)):
                return None
            out.append(value)
        return out

    def check(self, values: list[str], reverse: bool, field: str) -> list[str]:
        """:func:`match_instances` over these instances, quick when everything passes."""
        out = self.match(values, reverse)
        if out is None:
            out = match_instances(self.ftype, self.instances, values, reverse=reverse, field=field)
        return out
