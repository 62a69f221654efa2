"""The configuration dump: export and import of the configuration as EJBCA's configdump (JSON, or a zip of
YAML files, one directory per item type).

Item types use EJBCA's names and directories (``CA``/``certification-authorities``,
``CERTPROFILE``/``certificate-profiles``, ``EEPROFILE``/``end-entity-profiles``, ``SCEPCONFIG``/``scep-config``,
``OAUTHKEY``/``trusted-oauth-providers``, ``ROLE``/``admin-roles``). Each app registers the types it owns
(:func:`register`, from its ``AppConfig.ready``), so this core module never imports a higher app. An item is a
JSON object with ``object_type``, ``version``, ``name`` and the type's settings (references to other items by
name); keys and secrets are never exported (a CA's private key stays on its crypto token; an OAuth client
secret, SCEP RA passwords and Intune keys are left out).

Import is all-or-nothing: every item is checked and written through the same services as the admin UI (their
access rules, validation and audit events) inside one transaction, each in a savepoint so every problem is
reported; when any item fails, the transaction is rolled back and nothing at all is written.
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.db import DatabaseError, transaction

from .. import audit
from ..auth.access import Actor
from ..errors import AuthorizationDenied, NotFoundError, PkiError, ValidationError

logger = logging.getLogger("pki.configdump")

OVERWRITE_MODES = ("abort", "skip", "yes")
RESOLVE_MODES = ("abort", "skip", "useDefault")
# Bounds of an uploaded dump: a zip bomb or a huge document is refused before it is expanded.
MAX_DUMP_BYTES = 10 * 1024 * 1024
MAX_ZIP_ENTRIES = 5000
VERSION = 1


class MissingReference(ValidationError):
    """An item names another item that neither exists here nor is in the dump."""


@dataclass
class ItemType:
    """One kind of configuration item, declared by the app that owns it.

    ``export(actor)`` returns the item dicts the actor may see (without ``object_type``/``version``, which are
    added here); ``exists(name)`` says whether an item of that name is here; ``write(actor, item, existing,
    ctx)`` creates or updates it through the app's services (raising ``PkiError`` with the reason);
    ``references(item)`` lists ``(type, name, field)`` of the items it names, for the missing-reference check.
    ``order`` sorts the import (a CA before the profiles that name it).
    """

    name: str
    directory: str
    label: str
    view_rule: str
    export: Callable[[Actor], list[dict[str, Any]]]
    exists: Callable[[str], bool]
    write: Callable[[Actor, dict[str, Any], bool, ImportContext], None]
    references: Callable[[dict[str, Any]], list[tuple[str, str, str]]] = lambda item: []
    order: int = 50
    drop_reference: Callable[[dict[str, Any], str], None] | None = None  # resolve=useDefault: forget ``field``
    # Access rules name these items by id (``/ca/<id>``, ``/endentityprofilesrules/<id>/...``): a dump names
    # them by name, translated with these (``rule_prefix`` is the path up to the id).
    rule_prefix: str | None = None
    id_to_name: Callable[[int], str | None] | None = None
    name_to_id: Callable[[str], int | None] | None = None


_types: dict[str, ItemType] = {}


def register(item_type: ItemType) -> None:
    """Declare an item type (called from ``AppConfig.ready``; registering again replaces it)."""
    _types[item_type.name] = item_type


def item_types() -> list[ItemType]:
    """The registered types, in import order."""
    return sorted(_types.values(), key=lambda t: (t.order, t.name))


def find_type(ref: str) -> ItemType:
    """A type by EJBCA's name (``CERTPROFILE``) or directory (``certificate-profiles``), case-insensitive."""
    wanted = ref.strip().lower()
    for item_type in _types.values():
        if wanted in (item_type.name.lower(), item_type.directory):
            return item_type
    known = ", ".join(f"{t.name}/{t.directory}" for t in item_types())
    raise NotFoundError(f"Unknown configdump type '{ref}'. Supported here: {known}.")


def rule_to_dump(path: str) -> str:
    """An access rule path with item ids replaced by names (``/ca/3`` -> ``/ca/ManagementCA``)."""
    for item_type in _types.values():
        prefix = item_type.rule_prefix
        if prefix and path.startswith(prefix) and item_type.id_to_name:
            ident, sep, rest = path[len(prefix):].partition("/")
            if ident.isdigit():
                name = item_type.id_to_name(int(ident))
                if name is not None:
                    return f"{prefix}{name}{sep}{rest}"
    return path


def rule_from_dump(path: str) -> str:
    """The inverse of :func:`rule_to_dump` against this installation (after the dump's items are written)."""
    for item_type in _types.values():
        prefix = item_type.rule_prefix
        if prefix and path.startswith(prefix) and item_type.name_to_id:
            name, sep, rest = path[len(prefix):].partition("/")
            if name and not name.isdigit():
                ident = item_type.name_to_id(name)
                if ident is None:
                    raise MissingReference(f"Access rule {path} names {item_type.name} '{name}', which does not "
                                           "exist.", field="rules")
                return f"{prefix}{ident}{sep}{rest}"
    return path


# --- export --------------------------------------------------------------------------------------------

@dataclass
class Pattern:
    """An include/exclude pattern, EJBCA's ``type:name`` with ``*`` wildcards (``*:Example CA``)."""

    type_glob: str
    name_glob: str

    @classmethod
    def parse(cls, text: str) -> list[Pattern]:
        out = []
        for part in (text or "").split(";"):
            part = part.strip()
            if not part:
                continue
            type_glob, sep, name_glob = part.partition(":")
            if not sep:
                raise ValidationError(f"Pattern '{part}' is not TYPE:NAME (wildcards '*' allowed).", field="include")
            out.append(cls(type_glob.strip().lower(), name_glob.strip().lower()))
        return out

    def matches_type(self, item_type: ItemType) -> bool:
        return any(fnmatch.fnmatchcase(t, self.type_glob) for t in (item_type.name.lower(), item_type.directory))

    def matches(self, item_type: ItemType, name: str) -> bool:
        return self.matches_type(item_type) and fnmatch.fnmatchcase(name.lower(), self.name_glob)


@dataclass
class ExportSettings:
    include: list[Pattern] = field(default_factory=list)
    exclude: list[Pattern] = field(default_factory=list)
    external_cas: bool = False
    only_type: ItemType | None = None
    only_name: str | None = None


def _wanted(settings: ExportSettings, item_type: ItemType, name: str) -> bool:
    """EJBCA's rule: a type named by include patterns exports only the names they match; other types export
    everything; then exclude patterns remove what they match."""
    if settings.only_name is not None and name != settings.only_name:
        return False
    for_type = [p for p in settings.include if p.matches_type(item_type)]
    if for_type and not any(p.matches(item_type, name) for p in for_type):
        return False
    return not any(p.matches(item_type, name) for p in settings.exclude)


def export_dump(actor: Actor, settings: ExportSettings | None = None) -> dict[str, list[dict[str, Any]]]:
    """The configuration as ``{directory: [item, ...]}``; types the actor may not view are left out, unless
    asked for by type (then refused). Audited as CONFIGDUMP_EXPORT."""
    settings = settings or ExportSettings()
    actor.require("/administrator")
    types = [settings.only_type] if settings.only_type else item_types()
    out: dict[str, list[dict[str, Any]]] = {}
    for item_type in types:
        if not actor.is_allowed(item_type.view_rule):
            if settings.only_type:
                raise AuthorizationDenied(item_type.view_rule, actor.name)
            continue
        items = []
        for item in item_type.export(actor):
            if item_type.name == "CA" and item.get("status") == "EXTERNAL" and not (
                    settings.external_cas or settings.only_name is not None):
                continue
            if _wanted(settings, item_type, item["name"]):
                items.append({"object_type": item_type.label, "version": VERSION, **item})
        if items:
            out[item_type.directory] = items
    audit.record("CONFIGDUMP_EXPORT", actor.name, object_type="configdump",
                 details={"types": {k: len(v) for k, v in out.items()}})
    return out


def _file_name(name: str) -> str:
    """A zip member name for an item name (EJBCA keeps names readable; path separators are replaced)."""
    return re.sub(r"[\\/:*?\"<>|\x00-\x1f]", "_", name).strip(". ") or "_"


def to_zip(dump: dict[str, list[dict[str, Any]]]) -> bytes:
    """The dump as EJBCA's zip: ``<directory>/<name>.yaml`` per item."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for directory, items in dump.items():
            seen: set[str] = set()
            for item in items:
                base = _file_name(item["name"])
                member, n = base, 1
                while member.lower() in seen:
                    n += 1
                    member = f"{base}_{n}"
                seen.add(member.lower())
                zf.writestr(f"{directory}/{member}.yaml", yaml.safe_dump(item, sort_keys=False, allow_unicode=True))
    return buf.getvalue()


# --- reading a dump ------------------------------------------------------------------------------------

def parse_json(data: bytes | str) -> dict[str, list[dict[str, Any]]]:
    """A JSON dump, checked for shape (an object of lists of objects)."""
    if len(data) > MAX_DUMP_BYTES:
        raise ValidationError(f"The dump is larger than {MAX_DUMP_BYTES} bytes.", field="json")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"Not a JSON configdump: {exc}.", field="json") from None
    return check_dump(doc)


def check_dump(doc: Any) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(doc, dict):
        raise ValidationError("A configdump is a JSON object of item types.", field="json")
    for key, items in doc.items():
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValidationError(f"'{key}' must be a list of items (objects).", field="json")
    return doc


def parse_zip(data: bytes) -> dict[str, list[dict[str, Any]]]:
    """A zip of ``<directory>/<name>.yaml`` (or ``.json``) files; bounded before anything is expanded."""
    if len(data) > MAX_DUMP_BYTES:
        raise ValidationError(f"The zip file is larger than {MAX_DUMP_BYTES} bytes.", field="zipfile")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, ValueError, OSError):
        raise ValidationError("Not a zip file.", field="zipfile") from None
    if len(infos) > MAX_ZIP_ENTRIES or sum(i.file_size for i in infos) > MAX_DUMP_BYTES:
        raise ValidationError("The zip file holds too much: at most "
                              f"{MAX_ZIP_ENTRIES} files and {MAX_DUMP_BYTES} bytes uncompressed.", field="zipfile")
    doc: dict[str, list[dict[str, Any]]] = {}
    for info in infos:
        parts = [p for p in info.filename.replace("\\", "/").split("/") if p]
        if len(parts) < 2 or not parts[-1].lower().endswith((".yaml", ".yml", ".json")):
            continue  # EJBCA ignores files outside the type directories
        directory = parts[-2]
        try:
            with zf.open(info) as fh:
                raw = fh.read(MAX_DUMP_BYTES + 1)
            item = yaml.safe_load(raw)
        except (yaml.YAMLError, zipfile.BadZipFile, UnicodeDecodeError, OSError, RuntimeError, EOFError) as exc:
            raise ValidationError(f"{info.filename}: not readable YAML ({type(exc).__name__}).",
                                  field="zipfile") from None
        if not isinstance(item, dict):
            raise ValidationError(f"{info.filename}: an item is a YAML mapping.", field="zipfile")
        doc.setdefault(directory, []).append(item)
    return check_dump(doc)


# --- import --------------------------------------------------------------------------------------------

@dataclass
class ImportContext:
    """What an item's writer may need to know about the rest of the import."""

    initialize: bool = False
    incoming: dict[str, set[str]] = field(default_factory=dict)  # type name -> names in the dump
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """EJBCA's ConfigdumpResults: ``success``, ``errors``, ``warnings``."""

    success: bool
    errors: list[str]
    warnings: list[str]
    written: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"success": self.success, "errors": self.errors, "warnings": self.warnings}


class _RollBack(Exception):
    pass


def import_dump(actor: Actor, doc: dict[str, list[dict[str, Any]]], *, overwrite: str = "abort",
                resolve: str = "abort", ignore_errors: bool = False, initialize: bool = False) -> ImportResult:
    """Import ``doc`` all-or-nothing (module docstring). ``overwrite``: an existing item aborts the import,
    is skipped, or is updated (``yes``); ``resolve``: a reference to a missing item aborts, skips the item, or
    is dropped (``useDefault``); ``ignore_errors``: items that fail are skipped and reported as warnings, the
    others are written (still in one transaction)."""
    actor.require("/administrator")
    if overwrite not in OVERWRITE_MODES:
        raise ValidationError(f"overwrite must be one of {', '.join(OVERWRITE_MODES)}.", field="overwrite")
    if resolve not in RESOLVE_MODES:
        raise ValidationError(f"resolve must be one of {', '.join(RESOLVE_MODES)}.", field="resolve")
    errors: list[str] = []
    plan: list[tuple[ItemType, dict[str, Any]]] = []
    ctx = ImportContext(initialize=initialize)
    for key, items in doc.items():
        try:
            item_type = find_type(key)
        except NotFoundError as exc:
            errors.append(exc.message)
            continue
        for item in items:
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                errors.append(f"{item_type.directory}: an item without a name.")
                continue
            ctx.incoming.setdefault(item_type.name, set()).add(name)
            plan.append((item_type, item))
    plan.sort(key=lambda pair: (pair[0].order, pair[0].name))
    written = 0
    try:
        with transaction.atomic():
            for item_type, item in plan:
                label = f"{item_type.name} '{item['name']}'"
                problem = _check_item(item_type, item, ctx, overwrite, resolve)
                if problem == "skip":
                    continue
                if problem:
                    errors.append(f"{label}: {problem}")
                    continue
                try:
                    with transaction.atomic():
                        item_type.write(actor, item, item_type.exists(item["name"]), ctx)
                    written += 1
                except (PkiError, AuthorizationDenied) as exc:
                    errors.append(f"{label}: {exc.message}")
                except (TypeError, ValueError, AttributeError, KeyError, DatabaseError) as exc:
                    # A setting of the wrong type or size: the item's savepoint rolled back; report, never a 500.
                    logger.info("configdump item %s refused: %r", label, exc)
                    errors.append(f"{label}: a setting has a value of the wrong type or size "
                                  f"({type(exc).__name__}).")
            failed = errors and not ignore_errors
            if failed:
                raise _RollBack
            audit.record("CONFIGDUMP_IMPORT", actor.name, object_type="configdump",
                         details={"written": written, "skipped_errors": len(errors), "overwrite": overwrite,
                                  "resolve": resolve}, in_transaction=True)
    except _RollBack:
        audit.record_failure("CONFIGDUMP_IMPORT", actor.name, "; ".join(errors)[:2000], object_type="configdump")
        logger.info("configdump import by %s refused, nothing written: %s", actor.name, errors)
        return ImportResult(False, errors, ctx.warnings, 0)
    if errors:  # ignore_errors: the failing items were skipped
        return ImportResult(True, [], ctx.warnings + [f"Skipped: {e}" for e in errors], written)
    return ImportResult(True, [], ctx.warnings, written)


def _check_item(item_type: ItemType, item: dict[str, Any], ctx: ImportContext, overwrite: str,
                resolve: str) -> str | None:
    """The item's existence and reference problems under the chosen modes: an error text, "skip" or None."""
    name = item["name"]
    if item_type.exists(name):
        if overwrite == "abort":
            return "already exists (overwrite=abort); use overwrite=yes to update it or skip to keep it."
        if overwrite == "skip":
            ctx.warnings.append(f"{item_type.name} '{name}' exists and was kept (overwrite=skip).")
            return "skip"
    for ref_type, ref_name, ref_field in item_type.references(item):
        target = _types.get(ref_type)
        if not ref_name or target is None or target.exists(ref_name) or ref_name in ctx.incoming.get(ref_type, ()):
            continue
        if resolve == "abort":
            return f"references {ref_type} '{ref_name}' ({ref_field}), which is neither here nor in the dump."
        if resolve == "skip":
            ctx.warnings.append(f"{item_type.name} '{name}' skipped: it references missing {ref_type} '{ref_name}'.")
            return "skip"
        if item_type.drop_reference is None:
            return f"references missing {ref_type} '{ref_name}' ({ref_field}) and has no default for it."
        item_type.drop_reference(item, ref_field)
        ctx.warnings.append(f"{item_type.name} '{name}': missing {ref_type} '{ref_name}' ({ref_field}) replaced "
                            "by the default.")
    return None
