"""The console's surveillance pages: alerts (list, one with its evidence, the workflow) and
the rules' settings. Reading needs the console; every action goes through
``supervision.surveillance.services``, which checks the ``supervise`` scope and records it."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from exchange.errors import AppError
from supervision.models import Alert
from supervision.surveillance import selectors, services
from supervision.surveillance.figures import figure_rows
from supervision.surveillance.params import SPECS
from supervision.views import console_actor, refused

PAGE_SIZE = 25


class AlertFilterForm(forms.Form):
    state = forms.ChoiceField(label=gettext_lazy("State"), required=False,
                              choices=[("", gettext_lazy("Any"))] + list(Alert.State.choices))
    rule = forms.ChoiceField(label=gettext_lazy("Rule"), required=False,
                             choices=[("", gettext_lazy("Any"))] + [(code, spec.title) for code, spec in SPECS.items()])
    severity = forms.ChoiceField(label=gettext_lazy("Severity"), required=False,
                                 choices=[("", gettext_lazy("Any"))] + list(Alert.Severity.choices))


def _status(exc: AppError) -> int:
    return exc.status_code if 400 <= exc.status_code < 500 else 400


@login_required
def alerts(request):
    try:
        console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    form = AlertFilterForm(request.GET)
    status, filters = 200, {}
    if form.is_valid():
        filters = {name: value for name, value in form.cleaned_data.items() if value}
    else:
        status = 400
    page = Paginator(selectors.alert_list(**filters), PAGE_SIZE).get_page(request.GET.get("page"))
    names = selectors.organisation_names(page.object_list)
    rows = [{"alert": alert, "summary": selectors.alert_summary(alert), "title": selectors.rule_title(alert.rule.code),
             "organisations": [names.get(org, "") for org in alert.organisation_ids]} for alert in page.object_list]
    query = "&".join(f"{name}={value}" for name, value in filters.items())
    return render(request, "supervision/alerts.html", {
        "form": form, "page": page, "rows": rows, "query": query,
        "titles": {code: str(spec.title) for code, spec in SPECS.items()},
    }, status=status)


def _detail(request, alert: Alert, *, error: AppError | None = None, form: str = "", note: str = ""):
    names = selectors.organisation_names([alert])
    return render(request, "supervision/alert_detail.html", {
        "alert": alert, "summary": selectors.alert_summary(alert), "title": selectors.rule_title(alert.rule.code),
        "organisations": [(org, names.get(org, "")) for org in alert.organisation_ids],
        "figures": figure_rows(alert.evidence.get("figures", {})), "evidence": selectors.evidence_rows(alert),
        "error": error, "failed_form": form, "note": note,
    }, status=_status(error) if error else 200)


def _alert_or_404(alert_id: int) -> Alert:
    alert = selectors.alert_get(alert_id=alert_id)
    if alert is None:
        raise Http404("No such alert.")
    return alert


@login_required
def alert_detail(request, alert_id: int):
    try:
        console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    return _detail(request, _alert_or_404(alert_id))


@login_required
@require_POST
def alert_review(request, alert_id: int):
    return _act(request, alert_id, "review")


@login_required
@require_POST
def alert_close(request, alert_id: int):
    return _act(request, alert_id, "close")


def _act(request, alert_id: int, action: str):
    try:
        actor = console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    note = request.POST.get("note", "")
    try:
        if action == "review":
            services.alert_review(actor=actor, alert_id=alert_id, note=note)
            messages.success(request, _("Alert %(id)s is under review.") % {"id": alert_id})
        else:
            services.alert_close(actor=actor, alert_id=alert_id, note=note)
            messages.success(request, _("Alert %(id)s is closed.") % {"id": alert_id})
    except AppError as exc:
        if exc.status_code in (401, 403):
            return refused(request, exc)
        return _detail(request, _alert_or_404(alert_id), error=exc, form=action, note=note)
    return redirect(reverse("supervision:alert", args=[alert_id]))


@login_required
def rules(request, *, error: AppError | None = None, failed: str = "", data=None):
    try:
        console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    return render(request, "supervision/rules.html", {
        "rules": selectors.rule_rows(), "error": error, "failed": failed, "data": data or {},
    }, status=_status(error) if error else 200)


@login_required
@require_POST
def rule_edit(request, code: str):
    try:
        actor = console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    spec = SPECS.get(code)
    if spec is None:
        raise Http404("No such rule.")
    parameters, fields = {}, {}
    for name in spec.params:
        text = request.POST.get(name, "").strip()
        if text:
            try:
                parameters[name] = int(text)
            except ValueError:
                fields[name] = _("A whole number.")
    try:
        if fields:
            raise AppError("invalid", _("The parameters are not valid."), fields=fields)
        services.rule_update(actor=actor, code=code, reason=request.POST.get("reason", ""),
                             enabled=request.POST.get("enabled") == "on", parameters=parameters)
    except AppError as exc:
        if exc.status_code in (401, 403):
            return refused(request, exc)
        return rules(request, error=exc, failed=code, data=request.POST)
    messages.success(request, _("The rule %(title)s is saved.") % {"title": spec.title})
    return redirect(reverse("supervision:rules") + f"#rule-{code}")
