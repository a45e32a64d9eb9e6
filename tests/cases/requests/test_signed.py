"""A signed request: pdfsig (poppler) reports the unit's PAdES signature valid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine

from atalaya.cases.courts import load_config
from atalaya.cases.documents import document_body
from atalaya.cases.records import open_case
from atalaya.cases.requests.draft import Renderer, draft_request
from atalaya.signing import Pkcs11Key, open_signer
from tests.cases.requests.documents import pdf_text, pdfsig
from tests.cases.requests.helpers import leads, user
from tests.leads.helpers import NOW
from tests.support.pki import Pki

pytestmark = pytest.mark.skipif(
    shutil.which("pdfsig") is None, reason="poppler-utils (pdfsig) is not installed"
)


@pytest.fixture
def pki(unit_pki: Pki) -> Pki:
    return unit_pki


@pytest.fixture
def token(unit_token: Pkcs11Key) -> Pkcs11Key:
    return unit_token


@pytest.mark.parametrize("source", ["p12", "token"])
def test_the_request_is_signed_and_pdfsig_finds_it_valid(
    engine: Engine, tmp_path: Path, pki: Pki, request: pytest.FixtureRequest, source: str
) -> None:
    key = pki.p12 if source == "p12" else request.getfixturevalue("token")
    ana = user(engine, "ana")
    with open_signer(key) as signer, engine.begin() as conn:
        case = open_case(conn, ana, leads(engine).madrid, NOW)
        drafted = draft_request(conn, ana, case.id, NOW, Renderer(load_config({}), signer=signer))
        pdf = document_body(conn, drafted.pdf.id)
    assert drafted.pdf.signed and not drafted.docx.signed
    report = pdfsig(pdf, tmp_path)
    assert "Signature is Valid" in report, report
    assert "Signature #2" not in report  # one signature, over the whole request
    # Still PDF/A, still the whole request.
    assert b"<pdfaid:part>2</pdfaid:part>" in pdf
    assert "Se desconoce su identidad" in pdf_text(pdf, tmp_path)
