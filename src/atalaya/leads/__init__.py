"""Leads: sightings grouped into units of work, scored by named factors."""
