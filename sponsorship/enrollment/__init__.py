"""Enrollment (issue 6): agency hand-off batches, card-list import, targets, rollups, dashboards."""
