"""Form rendering shared by every form page: the error summary at the top of a form.

``{% error_summary form other_form formset extra %}`` lists every error of the forms and formsets it is
given (non-field errors first, then field errors in field order), each linking to its input, so a refused
submit shows all its problems at once; the messages also stay at the fields (``pki/_field.html``).
An argument may also be a list of ``(anchor, message)`` pairs for errors the page places itself (a
refusal about a whole list of the end entity profile editor).
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms, template

register = template.Library()


@dataclass(frozen=True)
class ErrorEntry:
    """One line of the summary: what is wrong and where (the id of the input, or "" for the whole form)."""

    message: str
    anchor: str = ""
    label: str = ""


def field_anchor(bound: forms.BoundField) -> str:
    """The id the summary links to: the input itself, or the first box of a group of radios/check boxes."""
    if bound.id_for_label:
        return bound.id_for_label
    return f"{bound.auto_id}_0" if bound.auto_id else ""


def _page_order(form: forms.BaseForm) -> list[forms.BoundField]:
    """The form's fields in the order the page shows them (its groups, when it declares them)."""
    grouped = getattr(form, "grouped", None)
    shown = [bound for _, fields in grouped() for bound in fields] if callable(grouped) else []
    names = {bound.name for bound in shown}
    return shown + [bound for bound in form if bound.name not in names]


def _form_entries(form: forms.BaseForm, row: str = "") -> list[ErrorEntry]:
    if not form.is_bound or not form.errors:
        return []
    out = [ErrorEntry(str(m), "", row) for m in form.non_field_errors()]
    for bound in _page_order(form):
        field = bound.field
        for message in bound.errors:
            anchor = "" if field.widget.is_hidden else field_anchor(bound)
            label = f"{row}: {bound.label}" if row else str(bound.label or bound.name)
            out.append(ErrorEntry(str(message), anchor, label))
    return out


def error_entries(*sources) -> list[ErrorEntry]:
    """Every error of the given forms, formsets and (anchor, message) lists, in page order."""
    out: list[ErrorEntry] = []
    for source in sources:
        if source is None or source == "":
            continue
        if isinstance(source, forms.BaseFormSet):
            if not source.is_bound:
                continue
            out.extend(ErrorEntry(str(m)) for m in source.non_form_errors())
            for i, form in enumerate(source.forms):
                row = getattr(form, "row_label", "") or f"Row {i + 1}"
                out.extend(_form_entries(form, row))
        elif isinstance(source, forms.BaseForm):
            out.extend(_form_entries(source))
        elif isinstance(source, dict):
            out.extend(ErrorEntry(str(m), str(a)) for a, m in source.items() if m)
        else:
            out.extend(ErrorEntry(str(m), str(a)) for a, m in source if m)
    return out


@register.inclusion_tag("pki/_error_summary.html")
def error_summary(*sources) -> dict:
    """The error summary box (nothing when there is no error)."""
    return {"entries": error_entries(*sources)}


@register.filter
def required_mark(bound: forms.BoundField) -> bool:
    """Whether the field's label gets the "required" mark: a required input the user can change."""
    field = bound.field
    return bool(field.required and not field.disabled and not field.widget.is_hidden)
