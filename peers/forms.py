"""The admin form of a peer connector."""

from __future__ import annotations

from django import forms

from keybindings.models import InternalKeyBinding


class ConnectorForm(forms.Form):
    name = forms.CharField(max_length=255)
    url = forms.CharField(max_length=1024, label="URL", help_text="https://ra.example.org:8443 (mTLS)")
    binding = forms.ModelChoiceField(queryset=InternalKeyBinding.objects.authentication(), to_field_name="name",
                                     label="Authentication key binding",
                                     help_text="The remote authenticator whose certificate and key connect")
    enabled = forms.BooleanField(required=False, initial=True)
