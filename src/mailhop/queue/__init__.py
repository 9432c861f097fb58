"""Submission, scheduling, retry and expiry, NDR/DSN generation."""
