"""Tokens and limits: verifying who calls, and how often."""
