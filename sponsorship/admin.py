"""Admin registrations of the sponsorship app live beside their models."""

from .matching import admin as matching_admin  # noqa: F401
