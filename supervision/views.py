"""The console's pages. Each area adds its own views module; this is the entry."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.access import actor_from_user
from exchange.errors import AppError
from supervision.access import check_console_reader


def console_actor(request):
    """The signed-in regulator, or AppError (403) for anyone else."""
    actor = actor_from_user(request.user)
    check_console_reader(actor)
    return actor


def refused(request, exc: AppError):
    return render(request, "supervision/refused.html", {"detail": exc.detail}, status=exc.status_code)


@login_required
def console_home(request):
    try:
        console_actor(request)
    except AppError as exc:
        return refused(request, exc)
    from supervision.selectors import console_overview

    return render(request, "supervision/home.html", console_overview())
