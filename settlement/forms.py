"""Forms of the settlement pages. The services validate what they are given; these only
read a file and a filter."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

# The desk's filter: one state per allocation (settlement.views._annotated decides which).
STATES = [
    ("", _("All")),
    ("to_start", _("To start")),
    ("delivering", _("Delivering")),
    ("metered", _("Metered")),
    ("disputed", _("Disputed")),
    # A state, not the "Settled" (at) column of a statement.
    ("settled", pgettext_lazy("allocation state", "Settled")),
]
# 10,000 rows with a note of 200 characters each, and room to spare.
UPLOAD_MAX_BYTES = 4 * 1024 * 1024


class StateFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), choices=STATES, required=False)


class MeteringUploadForm(forms.Form):
    file = forms.FileField(label=_("CSV file"), widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}))

    def clean_file(self):
        """The file as text: UTF-8 (a byte-order mark is dropped), at most ``UPLOAD_MAX_BYTES``."""
        upload = self.cleaned_data["file"]
        if upload.size > UPLOAD_MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than 4 MB; split it, or use a browser with JavaScript, "
                                          "which sends it in parts."))
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(_("This is not a CSV text file (it is not UTF-8).")) from None
        if "\x00" in text:
            raise forms.ValidationError(_("This is not a CSV text file (it holds binary data)."))
        # Line ends as the csv module reads text: a lone \r (old Mac files) would stop it mid-line.
        return text.replace("\r\n", "\n").replace("\r", "\n")
