from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Level, Locality, PovertyClass, Relation, Scheme, Sex


class HouseholdForm(forms.Form):
    locality = forms.ModelChoiceField(
        label=_("Commune"), queryset=Locality.objects.filter(scheme=Scheme.CURRENT, level=Level.COMMUNE)
    )
    external_ref = forms.CharField(label=_("Household number"), max_length=40)
    address = forms.CharField(label=_("Address"), max_length=300, required=False)
    phone = forms.CharField(label=_("Phone"), max_length=20, required=False)
    poverty_class = forms.ChoiceField(label=_("Poverty class"), choices=PovertyClass.choices)
    certificate_number = forms.CharField(label=_("Certificate number"), max_length=40, required=False)
    certificate_year = forms.IntegerField(label=_("Certificate year"), required=False, min_value=2000, max_value=2100)
    is_poor_commune = forms.BooleanField(label=_("Poor commune"), required=False)
    is_ethnic_minority = forms.BooleanField(label=_("Ethnic minority"), required=False)
    is_island_commune = forms.BooleanField(label=_("Island commune"), required=False)

    def __init__(self, *args, localities=None, **kwargs):
        super().__init__(*args, **kwargs)
        if localities is not None:
            self.fields["locality"].queryset = localities


class MemberForm(forms.Form):
    full_name = forms.CharField(label=_("Full name"), max_length=200, required=False)
    date_of_birth = forms.DateField(label=_("Date of birth"), required=False, input_formats=["%d/%m/%Y", "%Y-%m-%d"])
    sex = forms.ChoiceField(label=_("Sex"), choices=Sex.choices, required=False)
    personal_id = forms.CharField(label=_("Personal ID"), max_length=12, required=False)
    relation = forms.ChoiceField(label=_("Relation to head"), choices=Relation.choices, required=False)
    is_student = forms.BooleanField(label=_("Pupil or student"), required=False)

    def is_blank(self) -> bool:
        return not (self.cleaned_data.get("full_name") or self.cleaned_data.get("personal_id"))
