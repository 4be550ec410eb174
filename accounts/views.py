"""Pages: sign-up, sign-in, sign-out, API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import lockout
from accounts.access import actor_from_user
from accounts.forms import SignInForm, SignUpForm, TokenCreateForm
from accounts.selectors import token_list
from accounts.services import token_create, token_revoke, user_sign_up
from exchange.errors import AppError


class SignInView(auth_views.LoginView):
    template_name = "accounts/sign_in.html"
    form_class = SignInForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.locked:
            response.status_code = 429
        return response

    def form_valid(self, form):
        lockout.succeeded(email=form.get_user().email)
        return super().form_valid(form)


class SignOutView(auth_views.LogoutView):
    pass


def _apply_error(form, exc: AppError) -> None:
    for field, message in exc.fields.items():
        form.add_error(field if field in form.fields else None, message)
    if not exc.fields:
        form.add_error(None, exc.detail)


def sign_up(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_sign_up(**form.cleaned_data)
        except AppError as exc:
            _apply_error(form, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Welcome. Your organisation is awaiting KYC verification by the regulator."))
            return redirect("accounts:tokens")
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/sign_up.html", {"form": form}, status=status)


def _token_form(actor, data=None) -> TokenCreateForm:
    """Offers only the scopes the person's role allows."""
    form = TokenCreateForm(data)
    form.fields["scopes"].choices = [(v, label) for v, label in form.fields["scopes"].choices if v in actor.scopes]
    return form


@login_required
def tokens(request):
    actor = actor_from_user(request.user)
    form = _token_form(actor, request.POST or None)
    created_secret = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                with transaction.atomic():
                    _, created_secret = token_create(membership=actor.membership, **form.cleaned_data)
                form = _token_form(actor)
            except AppError as exc:
                _apply_error(form, exc)
                status = 403 if exc.status_code == 403 else 400
        else:
            status = 400
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": token_list(user=request.user), "created_secret": created_secret, "actor": actor},
        status=status,
    )


@login_required
@require_POST
def token_revoke_view(request, token_id: int):
    token = get_object_or_404(token_list(user=request.user), pk=token_id)
    token_revoke(token=token, user=request.user)
    messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
    return redirect("accounts:tokens")
