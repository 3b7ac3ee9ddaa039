"""Matching: cleared donor money to approved members' cards (issue 5). See the Matching section of README.md."""
