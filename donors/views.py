from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def me(request):
    scopes = request.user.scopes.select_related("locality", "locality__province").order_by("locality__name")
    return render(request, "donors/me.html", {"scopes": scopes})
