"""Judicial and preservation requests: drafting, rendering, batches."""
