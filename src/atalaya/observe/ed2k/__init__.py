"""eD2K observation: probing eMule/aMule peers for watched files."""
