"""eD2K (eDonkey2000 / eMule / aMule) network: hashing first, protocol codecs later."""
