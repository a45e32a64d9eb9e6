"""eD2K (eDonkey2000 / eMule / aMule): the file hash and the sans-I/O client protocol codecs."""
