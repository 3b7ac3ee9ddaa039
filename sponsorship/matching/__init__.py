"""Matching: cleared donor money to approved members' cards (issue 5). See docs/readme/matching.md."""
