from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiToken, Organisation


class SignInForm(AuthenticationForm):
    username = forms.EmailField(label=_("E-mail"), widget=forms.EmailInput(attrs={"autofocus": True}))


class SignUpForm(forms.Form):
    email = forms.EmailField(label=_("E-mail"))
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput, help_text=_("At least 10 characters."))
    organisation_name = forms.CharField(label=_("Organisation"), max_length=200)
    kind = forms.ChoiceField(
        label=_("I want to"),
        choices=[(Organisation.Kind.BUYER, _("Buy compute")), (Organisation.Kind.PROVIDER, _("Provide compute"))],
    )
    city = forms.CharField(label=_("City"), max_length=100, required=False, help_text=_("Sets latency circles to the hubs."))


class TokenCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"), choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple
    )
    expires_at = forms.DateTimeField(label=_("Expires"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
