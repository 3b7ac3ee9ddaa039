"""Every route the project serves, read from Django's resolver (the single source of truth)."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class Route:
    name: str  # the URL name, or 'admin/*' for the whole Django admin
    pattern: str  # the full route as written in the urlconfs


def _walk(resolver, prefix: str = ""):
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if getattr(entry, "app_name", None) == "admin" or route.startswith("admin/"):
                yield Route("admin/*", "admin/")
                continue
            yield from _walk(entry, route)
        elif isinstance(entry, URLPattern):
            yield Route(entry.name or f"<unnamed {route}>", route)


def all_routes() -> dict[str, Route]:
    """{name: Route}; a name bound to two routes would hide one from the matrix, so it fails."""
    routes: dict[str, Route] = {}
    for r in _walk(get_resolver()):
        if r.name in routes and routes[r.name] != r:
            raise AssertionError(f"URL name {r.name!r} is used by two routes: {routes[r.name].pattern}, {r.pattern}")
        routes[r.name] = r
    return routes
