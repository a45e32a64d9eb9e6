"""Enrichment: where an IP is, who serves it, which jurisdiction and time zone."""
