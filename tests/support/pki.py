"""The lab's self-made CA and unit certificate, for the tests (atalaya.lab.pki)."""

from atalaya.lab.pki import (
    P12_PASSWORD,
    SO_PIN,
    SOFTHSM_LIBRARY,
    TOKEN_PIN,
    Pki,
    make_pki,
    make_softhsm_token,
    softhsm_available,
)

__all__ = [
    "P12_PASSWORD",
    "SOFTHSM_LIBRARY",
    "SO_PIN",
    "TOKEN_PIN",
    "Pki",
    "make_pki",
    "make_softhsm_token",
    "softhsm_available",
]
