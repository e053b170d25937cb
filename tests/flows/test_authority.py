"""The sign component: key checked against its certificate, journal before the HSM, one
signature per operation, key state and usage window re-checked at signing time."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from icao_pki.certificate import parse_certificate
from icao_pki.policy import CertificateFormat, DocumentType, PolicyViolation, Role
from icao_pki.signer import HashAlgorithm
from lifecycle_api.authority import AuthorityError
from lifecycle_api.store import HsmOperationKind, HsmOperationState, KeyState
from tests.flows.pki import PkiWorld

pytestmark = pytest.mark.hsm


def _authority(pki: PkiWorld):
    return pki.client.app.state.services.authority


def test_ceremony_journal_is_committed_with_input_hashes(pki_sqlite: PkiWorld) -> None:
    with pki_sqlite.world.store.transaction() as tx:
        ops = tx.hsm_operations()
        assert ops, "the ceremonies journalled nothing"
        assert {o.state for o in ops} == {HsmOperationState.COMMITTED}
        signs = [o for o in ops if o.kind is HsmOperationKind.SIGN]
        assert all(o.input_sha256 and o.output_sha256 for o in signs)
        csca = tx.certificate(pki_sqlite.ceremonies["passport_csca"]["certificate_id"])
        # the journalled output is exactly the certificate stored
        assert hashlib.sha256(csca.der).hexdigest() in {o.output_sha256 for o in signs}
        # and the journalled input is exactly its TBSCertificate: written before the HSM signed it
        assert hashlib.sha256(parse_certificate(csca.der).tbs_der).hexdigest() in {o.input_sha256 for o in signs}


def test_load_ca_refuses_a_key_that_is_not_the_certificates(pki_sqlite: PkiWorld) -> None:
    authority = _authority(pki_sqlite)
    with pki_sqlite.world.store.transaction() as tx:
        passport = tx.certificate(pki_sqlite.ceremonies["passport_csca"]["certificate_id"])
        idcard = tx.certificate(pki_sqlite.ceremonies["idcard_csca"]["certificate_id"])
        authority.load_ca(tx, passport)  # the real pairing loads
        passport.key_id = idcard.key_id  # swap the key behind the passport CSCA (not committed)
        with pytest.raises(AuthorityError, match="is not the key of certificate"):
            authority.load_ca(tx, passport)
        tx.session.rollback()


def test_one_signature_per_operation(pki_sqlite: PkiWorld) -> None:
    authority = _authority(pki_sqlite)
    with pki_sqlite.world.store.transaction() as tx:
        row, _ = tx.active_ca(Role.CSCA, DocumentType.PASSPORT, pki_sqlite.world.clock.now(),
                              certificate_format=CertificateFormat.X509)
        ca = authority.load_ca(tx, row)

    def twice(signer):
        signer.sign(b"first", HashAlgorithm.SHA256)
        signer.sign(b"second", HashAlgorithm.SHA256)
        return b""

    with pytest.raises(AuthorityError, match="already made its one signature"):
        authority.sign(ca.signer, ca.label, twice, lambda der: None, purpose="test")
    with pki_sqlite.world.store.transaction() as tx:
        last = tx.hsm_operations()[-1]
        assert last.state is HsmOperationState.ABANDONED  # one signature was made, never handed out
        assert last.input_sha256 == hashlib.sha256(b"first").hexdigest()


def test_check_key_refuses_retired_key_and_usage_window(pki_sqlite: PkiWorld) -> None:
    authority = _authority(pki_sqlite)
    now = pki_sqlite.world.clock.now()
    with pki_sqlite.world.store.transaction() as tx:
        row, key = tx.active_ca(Role.CSCA, DocumentType.PASSPORT, now, certificate_format=CertificateFormat.X509)
        ca = authority.load_ca(tx, row)
        authority.check_key(tx, ca, now)
        with pytest.raises(PolicyViolation, match=r"Art\. 23\.1a"):
            authority.check_key(tx, ca, now + timedelta(days=5 * 366))
        tx.set_key_state(key.id, KeyState.ACTIVE, KeyState.RETIRED, now=now)
        with pytest.raises(AuthorityError, match="retired"):
            authority.check_key(tx, ca, now)
        tx.session.rollback()


def test_crl_signing_outlives_the_certificate_signing_window(pki_sqlite: PkiWorld) -> None:
    """A revocation CRL must be signable after the CSCA key's usage window and rollover (DS certificates
    live 10 years, the CSCA key signs certificates for 5)."""
    authority = _authority(pki_sqlite)
    now = pki_sqlite.world.clock.now()
    with pki_sqlite.world.store.transaction() as tx:
        row, key = tx.active_ca(Role.CSCA, DocumentType.PASSPORT, now, certificate_format=CertificateFormat.X509)
        ca = authority.load_ca(tx, row)
        later = now + timedelta(days=5 * 366)
        with pytest.raises(PolicyViolation):
            authority.check_key(tx, ca, later)  # no more certificates
        authority.check_crl_key(tx, ca)  # but CRLs, yes
        tx.set_key_state(key.id, KeyState.ACTIVE, KeyState.RETIRED, now=now)
        authority.check_crl_key(tx, ca)  # also after the rollover retired it
        tx.set_key_state(key.id, KeyState.RETIRED, KeyState.DESTROYED, now=now)
        with pytest.raises(AuthorityError, match="can no longer sign CRLs"):
            authority.check_crl_key(tx, ca)
        tx.session.rollback()
