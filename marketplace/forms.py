from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Organisation
from marketplace.models import Cluster, ComputeClass, DeviceType
from marketplace.periods import china_today

SORTS = [
    ("newest", _("Newest")),
    ("price", _("Price, lowest first")),
    ("-price", _("Price, highest first")),
    ("start", _("Delivery start")),
    ("pue", _("PUE, lowest first")),
    ("-green", _("Green share, highest first")),
    ("latency", _("Latency, nearest first")),
]
LATENCIES = [("", _("Any distance")), ("1", _("1 ms — same city")), ("5", _("5 ms — same region")),
             ("20", _("20 ms — national"))]


class BrowseForm(forms.Form):
    """The market's filters. Every field is optional; invalid ones are reported, not fatal."""

    compute_class = forms.ChoiceField(label=_("Class"), required=False)
    hub = forms.ChoiceField(label=_("Hub"), required=False)
    city = forms.CharField(label=_("Your city"), required=False, max_length=60,
                           help_text=_("Sets the latency circle to each hub."))
    latency_max = forms.TypedChoiceField(label=_("Latency circle"), choices=LATENCIES, required=False, coerce=int,
                                         empty_value=None)
    date_from = forms.DateField(label=_("Delivering from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("Delivering until"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    pue_max = forms.DecimalField(label=_("PUE at most"), required=False, min_value=1, max_digits=4, decimal_places=2)
    green_min = forms.DecimalField(label=_("Green share at least (%)"), required=False, min_value=0, max_value=100,
                                   max_digits=5, decimal_places=2)
    price_max = forms.DecimalField(label=_("Price at most (CNY/SCU·h)"), required=False, min_value=0, max_digits=12,
                                   decimal_places=2)
    sort = forms.ChoiceField(label=_("Sort by"), choices=SORTS, required=False)

    def __init__(self, *args, classes, hubs, **kwargs):
        """``classes`` and ``hubs`` are already loaded, so the form costs no query."""
        super().__init__(*args, **kwargs)
        self.fields["compute_class"].choices = [("", _("All classes"))] + [(c.code, f"{c.code} — {c.name}") for c in classes]
        self.fields["hub"].choices = [("", _("All hubs"))] + [(h.code, h.name) for h in hubs]

    def clean(self):
        data = super().clean()
        for name in ("date_from", "date_to"):
            if data.get(name) and not 2000 <= data[name].year <= 2999:
                self.add_error(name, _("Use a year from 2000 to 2999."))
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            self.add_error("date_to", _("The end comes after the start."))
        if data.get("latency_max") and not data.get("city"):
            self.add_error("city", _("Give a city to filter by latency."))
        if data.get("sort") == "latency" and not data.get("city"):
            self.add_error("city", _("Give a city to sort by latency."))
        return data


class AssetForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    cluster = forms.ModelChoiceField(label=_("Cluster"), queryset=Cluster.objects.select_related("hub"),
                                     to_field_name="code", help_text=_("Sets the hub."))
    address = forms.CharField(label=_("Address"), max_length=300, required=False)
    pue = forms.DecimalField(label=_("PUE"), min_value=Decimal("1.00"), max_value=Decimal("3.00"), max_digits=4,
                             decimal_places=2, help_text=_("Hub starter areas target at most 1.25."))
    green_share = forms.DecimalField(label=_("Green-power share (%)"), min_value=0, max_value=100, max_digits=5,
                                     decimal_places=2, help_text=_("New hub data centres target above 80 %."))
    device_type = forms.ModelChoiceField(label=_("Device type"), queryset=DeviceType.objects.all(), required=False,
                                         help_text=_("Optional first inventory line; owners start as your organisation alone."))
    count = forms.IntegerField(label=_("Devices"), min_value=1, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cluster"].label_from_instance = lambda c: f"{c.hub.name} — {c.name} ({c.code})"

    def clean(self):
        data = super().clean()
        if bool(data.get("device_type")) != bool(data.get("count")):
            self.add_error("count", _("Give both a device type and a count, or neither."))
        return data


class ListingForm(forms.Form):
    asset = forms.ModelChoiceField(label=_("Asset"), queryset=None)
    device_type = forms.ModelChoiceField(label=_("Device type"), queryset=DeviceType.objects.all())
    compute_class = forms.ModelChoiceField(label=_("Class"), queryset=ComputeClass.objects.all(), to_field_name="code")
    start = forms.DateField(label=_("First day (China time)"), widget=forms.DateInput(attrs={"type": "date"}))
    days = forms.IntegerField(label=_("Days"), min_value=1, max_value=366, initial=3)
    device_count = forms.IntegerField(label=_("Devices"), min_value=1)
    reserve_price = forms.DecimalField(label=_("Reserve price (CNY per SCU·h)"), min_value=Decimal("0.01"), max_digits=12,
                                       decimal_places=2)

    def __init__(self, *args, assets, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["asset"].queryset = assets
        self.fields["start"].initial = china_today(timezone.now()) + timedelta(days=1)

    def clean_start(self):
        start = self.cleaned_data["start"]
        if not 2000 <= start.year <= 2999:
            raise forms.ValidationError(_("Use a year from 2000 to 2999."))
        return start


class InventoryForm(forms.Form):
    device_type = forms.ModelChoiceField(label=_("Device type"), queryset=DeviceType.objects.all())
    count = forms.IntegerField(label=_("Devices in total"), min_value=0)


OWNER_ROWS = 4


class OwnersForm(forms.Form):
    """Up to four owners; their basis points must add up to 10 000."""

    effective_from = forms.DateTimeField(
        label=_("Effective from (China time)"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("Empty means now. The past is never rewritten."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for i in range(1, OWNER_ROWS + 1):
            self.fields[f"owner_{i}"] = forms.ModelChoiceField(
                label=_("Owner %(n)s") % {"n": i}, queryset=Organisation.objects.all(), required=i == 1)
            self.fields[f"share_{i}"] = forms.IntegerField(
                label=_("Share (basis points)"), min_value=1, max_value=10000, required=i == 1)

    def owners(self) -> list[tuple[Organisation, int]]:
        rows = []
        for i in range(1, OWNER_ROWS + 1):
            owner, share = self.cleaned_data.get(f"owner_{i}"), self.cleaned_data.get(f"share_{i}")
            if owner and share:
                rows.append((owner, share))
        return rows

    def clean(self):
        data = super().clean()
        for i in range(1, OWNER_ROWS + 1):
            if bool(data.get(f"owner_{i}")) != bool(data.get(f"share_{i}")):
                self.add_error(f"share_{i}", _("Give both an owner and a share, or neither."))
        return data
