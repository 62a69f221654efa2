"""The form behind a list page's "Revoke selected": the checked rows and one revocation reason."""

from __future__ import annotations

from django import forms

from .certificates import RevokeForm

# One page of a list at most: a bulk revocation is run while the administrator waits for its result page.
BULK_LIMIT = 50


class SelectedIdsField(forms.Field):
    """The ``id`` of every checked row: positive integers, each once, at most BULK_LIMIT."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "required": "Select at least one row.",
        "invalid": "The selection is not a list of row numbers.",
        "too_many": f"Select at most {BULK_LIMIT} rows at a time.",
    }

    def to_python(self, value) -> list[int]:
        ids: list[int] = []
        for raw in value or []:
            try:
                pk = int(raw)
            except (TypeError, ValueError):
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
            if pk <= 0:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            if pk not in ids:
                ids.append(pk)
        return ids

    def validate(self, value: list[int]) -> None:
        super().validate(value)
        if len(value) > BULK_LIMIT:
            raise forms.ValidationError(self.error_messages["too_many"], code="too_many")


class BulkRevokeForm(RevokeForm):
    """Revoke the selected certificates or end entities with one reason; ``back`` is the list's query string."""

    id = SelectedIdsField()
    back = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)
