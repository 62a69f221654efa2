"""Shared pieces of the admin UI forms: field groups for long forms and a text box with suggestions."""

from __future__ import annotations

from django import forms
from django.utils.html import format_html, format_html_join


class FieldsetsMixin:
    """Lets a form declare ``fieldsets = [(title, [field names]), ...]`` for the generic form template;
    fields not named in any group are shown in a last, untitled group."""

    fieldsets: list[tuple[str, list[str]]] = []

    def grouped(self) -> list[tuple[str, list]]:
        """The bound fields in their groups, in declaration order."""
        groups = []
        seen: set[str] = set()
        for title, names in self.fieldsets:
            fields = [self[n] for n in names if n in self.fields]
            seen.update(names)
            if fields:
                groups.append((title, fields))
        rest = [self[n] for n in self.fields if n not in seen]
        if rest:
            groups.append(("", rest))
        return groups


class DatalistInput(forms.TextInput):
    """A text input with a ``<datalist>`` of suggestions (values the browser offers; any text is accepted)."""

    def __init__(self, attrs=None, suggestions: list[tuple[str, str]] | None = None):
        super().__init__(attrs)
        self.suggestions = suggestions or []

    def render(self, name, value, attrs=None, renderer=None):
        list_id = f"{(attrs or {}).get('id') or 'id_' + name}-list"
        attrs = {**(attrs or {}), "list": list_id}
        options = format_html_join("", '<option value="{}">{}</option>', self.suggestions)
        return format_html('{}<datalist id="{}">{}</datalist>', super().render(name, value, attrs, renderer),
                           list_id, options)

