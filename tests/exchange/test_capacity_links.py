"""The capacity browser and the terminals link to each other: a listing to the instruments
that trade its class and hub, an instrument to the listed capacity of its window."""

import re
from html import unescape

import pytest

pytestmark = pytest.mark.django_db


def test_a_terminal_leads_to_the_capacity_behind_it_and_back(client, instrument, listed_provider):
    terminal = client.get(f"/markets/{instrument.code}/").content.decode()
    link = unescape(re.search(r'href="([^"]+)" id="capacity-link"', terminal).group(1))
    capacity = client.get(link)
    assert capacity.status_code == 200
    page = capacity.content.decode()
    assert listed_provider.organisation.name in page  # the listing in the instrument's window

    back = unescape(re.search(r'href="(/markets/\?class=[^"]+)"', page).group(1))
    assert f"class={instrument.compute_class.code}" in back and f"hub={instrument.hub.code}" in back
    assert instrument.code in client.get(back).content.decode()


def test_the_capacity_of_another_window_is_not_shown(client, instrument, listed_provider):
    from datetime import timedelta

    from django.utils import timezone

    terminal = client.get(f"/markets/{instrument.code}/").content.decode()
    link = unescape(re.search(r'href="([^"]+)" id="capacity-link"', terminal).group(1))
    day = timezone.localtime(instrument.delivery_start).date()  # China time, as the page writes it
    assert f"date_from={day}" in link
    later = link.replace(f"date_from={day}", f"date_from={day + timedelta(days=5)}").replace(
        f"date_to={day}", f"date_to={day + timedelta(days=5)}")
    assert listed_provider.organisation.name not in client.get(later).content.decode()
