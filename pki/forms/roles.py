"""Forms of the "Roles and Access Rules" pages: a role's name, a member, and the tri-state rule tree."""

from __future__ import annotations

from django import forms

from ..auth.access import Actor, role_allows
from ..auth.resources import Resource, all_resources
from ..choices import MemberMatch
from ..models import AccessRule, CertificateAuthority, Role, TrustedOAuthProvider
from ..services.roles import OAUTH_CLAIMS, MemberSpec
from .base import DatalistInput

INHERIT, ALLOW, DENY = "", "allow", "deny"
RULE_STATES = [(INHERIT, "Inherit"), (ALLOW, "Allow"), (DENY, "Deny")]
RULE_PREFIX = "rule:"


class RoleForm(forms.Form):
    name = forms.CharField(max_length=255)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class MemberForm(forms.Form):
    """One member: which fields count depends on the match type (the service checks the combination)."""

    match_type = forms.ChoiceField(label="Match on", choices=MemberMatch.choices)
    provider = forms.CharField(label="OAuth provider", required=False,
                               help_text="The trusted OAuth provider's label (for OAuth claim members).")
    claim = forms.ChoiceField(label="Claim", required=False, choices=[("", "The provider's user claim")] + OAUTH_CLAIMS)
    issuer_ca = forms.ModelChoiceField(label="Issuing CA", required=False, queryset=CertificateAuthority.objects.none(),
                                       help_text="For client certificate members.")
    match_value = forms.CharField(label="Value", max_length=1024,
                                  help_text="User name, claim value, serial number (hex) or subject CN.")
    description = forms.CharField(required=False, max_length=255)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["issuer_ca"].queryset = CertificateAuthority.objects.local()
        labels = list(TrustedOAuthProvider.objects.values_list("label", flat=True))
        self.fields["provider"].widget = DatalistInput(suggestions=[(label, label) for label in labels])

    def spec(self) -> MemberSpec:
        d = self.cleaned_data
        return MemberSpec(match_type=d["match_type"], match_value=d["match_value"], provider=d.get("provider", ""),
                          claim=d.get("claim", ""), issuer_ca=d.get("issuer_ca"), description=d.get("description", ""))


class RulesForm(forms.Form):
    """One Inherit/Allow/Deny choice per known resource, plus the role's rules on paths no longer known
    (a deleted CA's, say) so saving the page never drops them silently."""

    def __init__(self, role: Role, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role = role
        self.current = dict(AccessRule.objects.filter(role=role).values_list("resource", "allowed"))
        self.resources: list[Resource] = all_resources()
        known = {r.path for r in self.resources}
        self.resources += [Resource(p, "(no longer known)", "Other rules of this role", 999)
                           for p in sorted(self.current) if p not in known]
        for res in self.resources:
            state = INHERIT if res.path not in self.current else (ALLOW if self.current[res.path] else DENY)
            self.fields[RULE_PREFIX + res.path] = forms.ChoiceField(
                label=res.label, choices=RULE_STATES, required=False, initial=state, widget=forms.RadioSelect)

    def rules(self) -> dict[str, bool]:
        """The submitted rule set (path -> allowed); inherit means no rule."""
        out = {}
        for name, value in self.cleaned_data.items():
            if value in (ALLOW, DENY):
                out[name[len(RULE_PREFIX):]] = value == ALLOW
        return out

    def groups(self, actor: Actor | None = None) -> list[tuple[str, list[dict]]]:
        """Rows for the template, grouped: resource, bound field, and what the role's saved rules decide."""
        saved = list(self.current.items())
        groups: dict[str, list[dict]] = {}
        for res in self.resources:
            groups.setdefault(res.group, []).append({
                "resource": res, "field": self[RULE_PREFIX + res.path], "effective": role_allows(saved, res.path),
                "explicit": res.path in self.current,
            })
        return list(groups.items())
