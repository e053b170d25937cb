"""Engine, transactions and every query of the lifecycle system."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, event, func, select, text, update
from sqlalchemy import create_engine as _sa_create_engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.util import identity_key

from icao_pki.policy import CertificateFormat, DocumentType, Role

from ..audit import GENESIS_HASH, AuditRecord, compute_entry_hash
from ..errors import Conflict, CounterExhausted, NotFound, StaleState
from .models import (
    AuditEntry,
    Base,
    Certificate,
    CertificateStatus,
    Crl,
    CrlScope,
    Hierarchy,
    HsmOperation,
    HsmOperationKind,
    HsmOperationState,
    Key,
    KeyState,
    Operator,
    OperatorKind,
    Organisation,
    OrganisationCertificate,
    OutboxMessage,
    OutboxState,
    PartyType,
    PublishedKind,
    PublishedObject,
    Request,
    RequestSignature,
    RequestState,
    Revocation,
    SignaturePurpose,
)

#: pg_advisory_xact_lock key serialising audit appends (ASCII "AUDIT" as an int)
_AUDIT_LOCK_KEY = 0x4155444954

_KEYS = Key.__table__.c
#: reserve n slots of an active key's budget: used + reserved + n <= max, in SQL (compare-and-set)
_RESERVE = (
    update(Key.__table__)
    .where(_KEYS.id == bindparam("key_id"), _KEYS.state == KeyState.ACTIVE,
           _KEYS.max_signatures.is_(None)
           | (_KEYS.signatures_used + _KEYS.signatures_reserved + bindparam("n") <= _KEYS.max_signatures))
    .values(signatures_reserved=_KEYS.signatures_reserved + bindparam("n"))
)  # fmt: skip
#: reserved slots become used (`used`) or are given back (the rest of `total`)
_SETTLE = (
    update(Key.__table__)
    .where(_KEYS.id == bindparam("key_id"), _KEYS.signatures_reserved >= bindparam("total"))
    .values(signatures_reserved=_KEYS.signatures_reserved - bindparam("total"),
            signatures_used=_KEYS.signatures_used + bindparam("used"))
    .returning(_KEYS.signatures_used, _KEYS.max_signatures)
)  # fmt: skip


def create_engine_for(url: str) -> Engine:
    """An engine that behaves the same on SQLite (foreign keys on, waits for locks) and PostgreSQL."""
    if url.startswith("sqlite"):
        engine = _sa_create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return _sa_create_engine(url, pool_pre_ping=True)


class Store:
    def __init__(self, url_or_engine: str | Engine) -> None:
        self.engine = create_engine_for(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    def create_schema(self) -> None:
        """Tests and throwaway databases; deployments run `alembic upgrade head`."""
        Base.metadata.create_all(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[StoreTx]:
        """One workflow step: commit on success, roll back everything on any exception."""
        with self._sessions() as session, session.begin():
            yield StoreTx(session)

    def dispose(self) -> None:
        self.engine.dispose()


class StoreTx:
    """Queries and writes inside one transaction.  Returns ORM rows; callers never build SQL."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _flush(self, what: str) -> None:
        try:
            self.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"{what} conflicts with an existing record", detail=str(exc.orig)) from None

    # --- organisations --------------------------------------------------------------------

    def add_organisation(
        self,
        *,
        name: str,
        party_type: PartyType,
        country: str,
        now: datetime,
        ministry: str | None = None,
        document_types: Sequence[DocumentType] = (),
        auto_countersign: bool = False,
        webhook_url: str | None = None,
    ) -> Organisation:
        org = Organisation(
            name=name,
            party_type=PartyType(party_type),
            country=country,
            ministry=ministry,
            document_types=[DocumentType(d).value for d in document_types],
            auto_countersign=auto_countersign,
            webhook_url=webhook_url,
            created_at=now,
        )
        self.session.add(org)
        self._flush(f"organisation {name!r}")
        return org

    def organisation(self, organisation_id: int) -> Organisation:
        org = self.session.get(Organisation, organisation_id)
        if org is None:
            raise NotFound(f"organisation {organisation_id} does not exist", organisation_id=organisation_id)
        return org

    def organisations(self) -> Sequence[Organisation]:
        return self.session.scalars(select(Organisation).order_by(Organisation.id)).all()

    def organisations_of_type(self, party_type: PartyType) -> Sequence[Organisation]:
        return self.session.scalars(
            select(Organisation).where(Organisation.party_type == PartyType(party_type)).order_by(Organisation.id)
        ).all()

    def coyeu_units(self, ministry: str) -> Sequence[Organisation]:
        return self.session.scalars(
            select(Organisation).where(Organisation.party_type == PartyType.COYEU, Organisation.ministry == ministry)
        ).all()

    # --- organisation certificates --------------------------------------------------------

    def add_organisation_certificate(
        self,
        *,
        organisation_id: int,
        fingerprint_sha256: str,
        subject: str,
        issuer: str,
        serial: str,
        not_before: datetime,
        not_after: datetime,
        der: bytes,
        now: datetime,
        hsm_label: str | None = None,
    ) -> OrganisationCertificate:
        row = OrganisationCertificate(
            hsm_label=hsm_label,
            organisation_id=organisation_id,
            fingerprint_sha256=fingerprint_sha256,
            subject=subject,
            issuer=issuer,
            serial=serial,
            not_before=not_before,
            not_after=not_after,
            der=der,
            registered_at=now,
        )
        self.session.add(row)
        self._flush("organisation certificate")
        return row

    def organisation_certificate_by_fingerprint(self, fingerprint_sha256: str) -> OrganisationCertificate | None:
        return self.session.scalars(
            select(OrganisationCertificate).where(OrganisationCertificate.fingerprint_sha256 == fingerprint_sha256)
        ).one_or_none()

    def organisation_certificates(self, organisation_id: int) -> Sequence[OrganisationCertificate]:
        return self.session.scalars(
            select(OrganisationCertificate)
            .where(OrganisationCertificate.organisation_id == organisation_id)
            .order_by(OrganisationCertificate.id)
        ).all()

    def centrally_held_certificate(self, organisation_id: int, now: datetime) -> OrganisationCertificate | None:
        """The newest certificate of the organisation, valid now, whose key the service's HSM holds."""
        return self.session.scalars(
            select(OrganisationCertificate)
            .where(
                OrganisationCertificate.organisation_id == organisation_id,
                OrganisationCertificate.hsm_label.is_not(None),
                OrganisationCertificate.not_before <= now,
                OrganisationCertificate.not_after >= now,
            )
            .order_by(OrganisationCertificate.not_before.desc(), OrganisationCertificate.id.desc())
            .limit(1)
        ).first()

    # --- operators ------------------------------------------------------------------------

    def add_operator(
        self, *, organisation_id: int, name: str, kind: OperatorKind, token_id: str, credential_hash: str, now: datetime
    ) -> Operator:
        op = Operator(
            organisation_id=organisation_id,
            name=name,
            kind=OperatorKind(kind),
            token_id=token_id,
            credential_hash=credential_hash,
            active=True,
            created_at=now,
        )
        self.session.add(op)
        self._flush(f"operator {name!r}")
        return op

    def operator_by_token_id(self, token_id: str) -> Operator | None:
        return self.session.scalars(select(Operator).where(Operator.token_id == token_id)).one_or_none()

    def operators(self, organisation_id: int) -> Sequence[Operator]:
        """An organisation's operators and service accounts, oldest first."""
        return self.session.scalars(
            select(Operator).where(Operator.organisation_id == organisation_id).order_by(Operator.id)
        ).all()

    # --- requests -------------------------------------------------------------------------

    def add_request(
        self,
        *,
        request_id: str,
        request_type: str,
        document_type: DocumentType | None,
        applicant_organisation_id: int,
        ministry: str | None,
        payload: dict[str, Any],
        deadline: datetime | None,
        now: datetime,
    ) -> Request:
        req = Request(
            id=request_id,
            request_type=request_type,
            document_type=document_type,
            applicant_organisation_id=applicant_organisation_id,
            ministry=ministry,
            state=RequestState.SUBMITTED,
            payload=payload,
            deadline=deadline,
            created_at=now,
            updated_at=now,
        )
        self.session.add(req)
        self._flush(f"request {request_id}")
        return req

    def request(self, request_id: str) -> Request:
        req = self.session.get(Request, request_id)
        if req is None:
            raise NotFound(f"request {request_id} does not exist", request_id=request_id)
        return req

    def requests(
        self,
        *,
        applicant_organisation_id: int | None = None,
        ministry: str | None = None,
        states: Sequence[RequestState] | None = None,
    ) -> Sequence[Request]:
        query = select(Request).order_by(Request.created_at, Request.id)
        if applicant_organisation_id is not None:
            query = query.where(Request.applicant_organisation_id == applicant_organisation_id)
        if ministry is not None:
            query = query.where(Request.ministry == ministry)
        if states is not None:
            query = query.where(Request.state.in_([RequestState(s) for s in states]))
        return self.session.scalars(query).all()

    def overdue_requests(self, now: datetime) -> Sequence[Request]:
        open_states = [s for s in RequestState if not s.terminal]
        return self.session.scalars(
            select(Request)
            .where(Request.deadline.is_not(None), Request.deadline < now, Request.state.in_(open_states))
            .order_by(Request.deadline)
        ).all()

    def transition_request(
        self, request_id: str, expected: RequestState, new: RequestState, *, now: datetime, **fields: Any
    ) -> Request:
        """Compare-and-set: moves the request only if it is still in `expected`."""
        result = self.session.execute(
            update(Request)
            .where(Request.id == request_id, Request.state == expected)
            .values(state=new, updated_at=now, **fields)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            current = self.session.get(Request, request_id)
            if current is None:
                raise NotFound(f"request {request_id} does not exist", request_id=request_id)
            self.session.refresh(current)
            raise StaleState(
                f"request {request_id} is {current.state.value}, not {expected.value}",
                request_id=request_id,
                state=current.state.value,
                expected=expected.value,
            )
        req = self.session.get(Request, request_id)
        assert req is not None
        self.session.refresh(req)
        return req

    def set_request_result(self, request_id: str, result: dict[str, Any], *, now: datetime) -> Request:
        self.session.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(result=result, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        req = self.request(request_id)
        self.session.refresh(req)
        return req

    def add_request_signature(
        self,
        *,
        request_id: str,
        organisation_id: int,
        purpose: SignaturePurpose,
        cms_der: bytes,
        content_sha256: str,
        signer_fingerprint_sha256: str,
        signing_time: datetime,
        now: datetime,
    ) -> RequestSignature:
        if self.session.scalars(
            select(RequestSignature.id).where(RequestSignature.content_sha256 == content_sha256)
        ).first():
            raise Conflict("this signed document was already submitted", content_sha256=content_sha256)
        row = RequestSignature(
            request_id=request_id,
            organisation_id=organisation_id,
            purpose=SignaturePurpose(purpose),
            cms_der=cms_der,
            content_sha256=content_sha256,
            signer_fingerprint_sha256=signer_fingerprint_sha256,
            signing_time=signing_time,
            verified_at=now,
        )
        self.session.add(row)
        self._flush("signed document")
        return row

    def request_signatures(self, request_id: str) -> Sequence[RequestSignature]:
        return self.session.scalars(
            select(RequestSignature).where(RequestSignature.request_id == request_id).order_by(RequestSignature.id)
        ).all()

    # --- hierarchies, keys, certificates ---------------------------------------------------

    def add_hierarchy(
        self, *, name: str, document_type: DocumentType, certificate_format: CertificateFormat, now: datetime
    ) -> Hierarchy:
        row = Hierarchy(name=name, document_type=document_type, certificate_format=certificate_format, created_at=now)
        self.session.add(row)
        self._flush(f"hierarchy {name!r}")
        return row

    def add_key(
        self,
        *,
        hsm_label: str,
        role: Role,
        document_type: DocumentType,
        algorithm: str,
        now: datetime,
        hierarchy_id: int | None = None,
        organisation_id: int | None = None,
        usage_not_before: datetime | None = None,
        usage_not_after: datetime | None = None,
        max_signatures: int | None = None,
        state: KeyState = KeyState.GENERATED,
    ) -> Key:
        row = Key(
            hsm_label=hsm_label,
            role=Role(role),
            document_type=DocumentType(document_type),
            algorithm=algorithm,
            hierarchy_id=hierarchy_id,
            organisation_id=organisation_id,
            usage_not_before=usage_not_before,
            usage_not_after=usage_not_after,
            max_signatures=max_signatures,
            state=state,
            signatures_used=0,
            signatures_reserved=0,
            created_at=now,
        )
        self.session.add(row)
        self._flush(f"key {hsm_label!r}")
        return row

    def key(self, key_id: int) -> Key:
        row = self.session.get(Key, key_id)
        if row is None:
            raise NotFound(f"key {key_id} does not exist", key_id=key_id)
        self.session.refresh(row)
        return row

    def set_key_state(self, key_id: int, expected: KeyState, new: KeyState, *, now: datetime) -> None:
        values: dict[str, Any] = {"state": new}
        if new is KeyState.DESTROYED:
            values["destroyed_at"] = now
        result = self.session.execute(
            update(Key).where(Key.id == key_id, Key.state == expected).values(**values)
        )
        if result.rowcount != 1:
            raise StaleState(f"key {key_id} is not {expected.value}", key_id=key_id, expected=expected.value)

    def activate_key(self, key_id: int, *, expected: KeyState, usage_not_before: datetime,
                     usage_not_after: datetime, max_signatures: int | None) -> None:
        """A key becomes usable when its certificate is stored (compare-and-set on its state)."""
        result = self.session.execute(
            update(Key)
            .where(Key.id == key_id, Key.state == expected)
            .values(state=KeyState.ACTIVE, usage_not_before=usage_not_before, usage_not_after=usage_not_after,
                    max_signatures=max_signatures)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise StaleState(f"key {key_id} is not {expected.value}", key_id=key_id, expected=expected.value)

    def reserve_signatures(self, key_id: int, count: int = 1) -> None:
        """Reserve `count` signatures of an active key's budget, atomically, before signing.

        ``UPDATE … WHERE used + reserved + n <= max`` — two concurrent signers can never
        both take the last signature; a crash leaves a reservation, never an over-count.
        """
        if count <= 0:
            raise ValueError("count must be positive")
        result = self._counter_update(_RESERVE, key_id=key_id, n=count)
        if result.rowcount != 1:
            row = self.key(key_id)
            if row.state is not KeyState.ACTIVE:
                raise StaleState(f"key {row.hsm_label} is {row.state.value}, not active", key_id=key_id)
            raise CounterExhausted(
                f"key {row.hsm_label} has {row.signatures_used:,} signatures used and {row.signatures_reserved:,} "
                f"reserved of {row.max_signatures:,}; {count} more would exceed the limit",
                key_id=key_id,
                used=row.signatures_used,
                reserved=row.signatures_reserved,
                max=row.max_signatures,
            )

    def _counter_update(self, statement: Any, **parameters: Any) -> Any:
        """Run a prepared counter UPDATE in this transaction; a `Key` of this session then reads
        the counters again.

        The signing service settles (and tops its reservation up) once per batch of a
        personalisation line, where building the statement and SQLAlchemy's ORM bulk-update
        path — its "evaluate" synchronisation re-interprets the WHERE clause in Python — cost
        about as much as the database's commit.  So the statements are built once (Core, bound
        parameters) and only the one loaded `Key` they touch, if any, is expired."""
        self.session.flush()  # what the ORM's own execute would have flushed first
        result = self.session.connection().execute(statement, parameters)
        loaded = self.session.identity_map.get(identity_key(Key, parameters["key_id"]))
        if loaded is not None:
            self.session.expire(loaded, ["signatures_used", "signatures_reserved"])
        return result

    def settle_signatures(self, key_id: int, *, used: int, released: int = 0) -> bool:
        """Turn reserved signatures into used ones (`used`) or give them back (`released`).

        Returns whether every signature of the key's budget is now made: only then can the key
        be retired, so the signing service's per-batch settle asks nothing more of the database
        in the usual case (the counters come back from the same UPDATE)."""
        total = used + released
        row = self._counter_update(_SETTLE, key_id=key_id, total=total, used=used).first()
        if row is None:
            raise StaleState(f"key {key_id} has fewer than {total} reserved signatures", key_id=key_id)
        return row.max_signatures is not None and row.signatures_used >= row.max_signatures

    def add_certificate(self, **fields: Any) -> Certificate:
        row = Certificate(status=CertificateStatus.ACTIVE, **fields)
        self.session.add(row)
        self._flush("certificate")
        return row

    def certificate(self, certificate_id: int) -> Certificate:
        row = self.session.get(Certificate, certificate_id)
        if row is None:
            raise NotFound(f"certificate {certificate_id} does not exist", certificate_id=certificate_id)
        return row

    def add_revocation(self, **fields: Any) -> Revocation:
        row = Revocation(**fields)
        self.session.add(row)
        self._flush("revocation")
        return row

    def add_published(self, *, kind: PublishedKind, name: str, der: bytes, sha256: str, now: datetime, **fields: Any) -> PublishedObject:
        row = PublishedObject(kind=kind, name=name, der=der, sha256=sha256, published_at=now, **fields)
        self.session.add(row)
        self._flush("published object")
        return row

    def certificate_by_fingerprint(self, fingerprint_sha256: str) -> Certificate | None:
        return self.session.scalars(
            select(Certificate).where(Certificate.fingerprint_sha256 == fingerprint_sha256)
        ).one_or_none()

    def certificates(
        self,
        *,
        role: Role | None = None,
        document_type: DocumentType | None = None,
        certificate_format: CertificateFormat | None = None,
        organisation_id: int | None = None,
        statuses: Sequence[CertificateStatus] | None = None,
        issuer_certificate_id: int | None = None,
    ) -> Sequence[Certificate]:
        query = select(Certificate).order_by(Certificate.id)
        if role is not None:
            query = query.where(Certificate.role == Role(role))
        if document_type is not None:
            query = query.where(Certificate.document_type == DocumentType(document_type))
        if certificate_format is not None:
            query = query.where(Certificate.certificate_format == CertificateFormat(certificate_format))
        if organisation_id is not None:
            query = query.where(Certificate.organisation_id == organisation_id)
        if statuses is not None:
            query = query.where(Certificate.status.in_([CertificateStatus(s) for s in statuses]))
        if issuer_certificate_id is not None:
            query = query.where(Certificate.issuer_certificate_id == issuer_certificate_id)
        return self.session.scalars(query).all()

    def certificate_by_chr(self, chr: str, *, organisation_id: int | None = None) -> Certificate | None:
        """The newest CV certificate with this holder reference (optionally of one holder)."""
        query = select(Certificate).where(Certificate.chr == chr)
        if organisation_id is not None:
            query = query.where(Certificate.organisation_id == organisation_id)
        return self.session.scalars(query.order_by(Certificate.id.desc()).limit(1)).first()

    def key_by_label(self, hsm_label: str) -> Key | None:
        return self.session.scalars(select(Key).where(Key.hsm_label == hsm_label)).one_or_none()

    def active_ca(self, role: Role, document_type: DocumentType, now: datetime, *,
                  certificate_format: CertificateFormat | None = None,
                  organisation_id: int | None = None) -> tuple[Certificate, Key] | None:
        """The CA certificate (and its HSM key) that signs for `role` / `document_type` now:
        certificate active and valid, key active inside its usage window; newest first."""
        query = (
            select(Certificate, Key)
            .join(Key, Key.id == Certificate.key_id)
            .where(
                Certificate.role == Role(role),
                Certificate.document_type == DocumentType(document_type),
                Certificate.status == CertificateStatus.ACTIVE,
                Certificate.not_before <= now,
                Certificate.not_after >= now,
                Key.state == KeyState.ACTIVE,
                (Key.usage_not_before.is_(None)) | (Key.usage_not_before <= now),
                (Key.usage_not_after.is_(None)) | (Key.usage_not_after >= now),
            )
            .order_by(Certificate.not_before.desc(), Certificate.id.desc())
            .limit(1)
        )
        if certificate_format is not None:
            query = query.where(Certificate.certificate_format == CertificateFormat(certificate_format))
        if organisation_id is not None:
            query = query.where(Certificate.organisation_id == organisation_id)
        row = self.session.execute(query).first()
        return (row[0], row[1]) if row else None

    def active_ds_key(self, document_type: DocumentType, now: datetime, *,
                      organisation_id: int | None = None) -> tuple[Key, Certificate] | None:
        """THE query issue 5's signing service uses: the active DS key of a document type.

        A DS key qualifies when its `keys` row is active, `now` lies inside its private-key
        usage window (Art. 23.1b / 26.1b, from the certificate's PKUP), its budget is not
        spent, and its DS certificate is active and valid.  Oldest usage window first (a
        successor issued ahead waits for its predecessor; `signing/keys.py` uses the same rule);
        `organisation_id` narrows to one Agency's keys.  Reserve signatures with
        `reserve_signatures(key.id, n)` before signing, settle after."""
        query = (
            select(Key, Certificate)
            .join(Certificate, Certificate.key_id == Key.id)
            .where(
                Key.role == Role.DS,
                Key.document_type == DocumentType(document_type),
                Key.state == KeyState.ACTIVE,
                Key.usage_not_before <= now,
                Key.usage_not_after >= now,
                (Key.max_signatures.is_(None))
                | (Key.signatures_used + Key.signatures_reserved < Key.max_signatures),
                Certificate.role == Role.DS,
                Certificate.status == CertificateStatus.ACTIVE,
                Certificate.not_before <= now,
                Certificate.not_after >= now,
            )
            .order_by(Key.usage_not_before, Key.id)
            .limit(1)
        )
        if organisation_id is not None:
            query = query.where(Key.organisation_id == organisation_id)
        row = self.session.execute(query).first()
        return (row[0], row[1]) if row else None

    def set_certificate_status(self, certificate_id: int, expected: CertificateStatus, new: CertificateStatus) -> None:
        result = self.session.execute(
            update(Certificate)
            .where(Certificate.id == certificate_id, Certificate.status == expected)
            .values(status=new)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise StaleState(f"certificate {certificate_id} is not {expected.value}", certificate_id=certificate_id)
        self.session.expire_all()

    def revocations_of_issuer(self, issuer_certificate_id: int) -> Sequence[tuple[Revocation, Certificate]]:
        rows = self.session.execute(
            select(Revocation, Certificate)
            .join(Certificate, Certificate.id == Revocation.certificate_id)
            .where(Certificate.issuer_certificate_id == issuer_certificate_id, Revocation.revoked_at.is_not(None))
            .order_by(Revocation.id)
        ).all()
        return [(r, c) for r, c in rows]

    def revocation_of(self, certificate_id: int) -> Revocation | None:
        return self.session.scalars(select(Revocation).where(Revocation.certificate_id == certificate_id)).one_or_none()

    def published(self, kind: PublishedKind, *, document_type: DocumentType | None = None,
                  current_only: bool = True) -> Sequence[PublishedObject]:
        query = select(PublishedObject).where(PublishedObject.kind == PublishedKind(kind))
        if document_type is not None:
            query = query.where(PublishedObject.document_type == DocumentType(document_type))
        if current_only:
            query = query.where(PublishedObject.withdrawn_at.is_(None))
        return self.session.scalars(query.order_by(PublishedObject.id)).all()

    def published_object(self, object_id: int) -> PublishedObject:
        row = self.session.get(PublishedObject, object_id)
        if row is None or row.withdrawn_at is not None:
            raise NotFound(f"published object {object_id} does not exist", object_id=object_id)
        return row

    def withdraw_published(self, kind: PublishedKind, *, now: datetime, document_type: DocumentType | None = None,
                           certificate_id: int | None = None) -> None:
        query = update(PublishedObject).where(PublishedObject.kind == PublishedKind(kind),
                                              PublishedObject.withdrawn_at.is_(None))
        if document_type is not None:
            query = query.where(PublishedObject.document_type == DocumentType(document_type))
        if certificate_id is not None:
            query = query.where(PublishedObject.certificate_id == certificate_id)
        self.session.execute(query.values(withdrawn_at=now).execution_options(synchronize_session=False))

    # --- the sign component's journal ----------------------------------------------------

    def add_hsm_operation(self, *, kind: HsmOperationKind, hsm_label: str, purpose: str, now: datetime,
                          request_id: str | None = None, details: dict[str, Any] | None = None) -> HsmOperation:
        row = HsmOperation(kind=HsmOperationKind(kind), hsm_label=hsm_label, purpose=purpose, request_id=request_id,
                           state=HsmOperationState.PENDING, details=details or {}, created_at=now, updated_at=now)
        self.session.add(row)
        self._flush("HSM operation")
        return row

    def move_hsm_operation(self, operation_id: int, expected: Sequence[HsmOperationState], new: HsmOperationState, *,
                           now: datetime, **fields: Any) -> None:
        """Compare-and-set on the journal row: a step adopts an operation exactly once."""
        result = self.session.execute(
            update(HsmOperation)
            .where(HsmOperation.id == operation_id, HsmOperation.state.in_([HsmOperationState(e) for e in expected]))
            .values(state=new, updated_at=now, **fields)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise StaleState(f"HSM operation {operation_id} is not {'/'.join(e.value for e in expected)}",
                             operation_id=operation_id)

    def unsettled_hsm_operations(self, older_than: datetime) -> Sequence[HsmOperation]:
        return self.session.scalars(
            select(HsmOperation)
            .where(HsmOperation.state.in_([HsmOperationState.PENDING, HsmOperationState.DONE]),
                   HsmOperation.updated_at <= older_than)
            .order_by(HsmOperation.id)
        ).all()

    def hsm_operations(self) -> Sequence[HsmOperation]:
        return self.session.scalars(select(HsmOperation).order_by(HsmOperation.id)).all()

    def next_crl_number(self, issuer_fingerprint_sha256: str) -> int:
        """Monotonic cRLNumber per issuer; the unique (issuer, number) constraint settles races."""
        current = self.session.execute(
            select(func.max(Crl.crl_number)).where(Crl.issuer_fingerprint_sha256 == issuer_fingerprint_sha256)
        ).scalar_one()
        return (current or 0) + 1

    # --- CRLs -----------------------------------------------------------------------------

    def add_crl(
        self,
        *,
        scope: CrlScope,
        issuer_fingerprint_sha256: str,
        issuer_name: str,
        crl_number: int,
        this_update: datetime,
        next_update: datetime | None,
        der: bytes,
        now: datetime,
    ) -> Crl:
        row = Crl(
            scope=scope,
            issuer_fingerprint_sha256=issuer_fingerprint_sha256,
            issuer_name=issuer_name,
            crl_number=crl_number,
            this_update=this_update,
            next_update=next_update,
            der=der,
            created_at=now,
        )
        self.session.add(row)
        self._flush(f"CRL number {crl_number}")
        return row

    def latest_crl(self, issuer_fingerprint_sha256: str, scope: CrlScope) -> Crl | None:
        return self.session.scalars(
            select(Crl)
            .where(Crl.issuer_fingerprint_sha256 == issuer_fingerprint_sha256, Crl.scope == scope)
            .order_by(Crl.crl_number.desc())
            .limit(1)
        ).first()

    # --- audit ----------------------------------------------------------------------------

    def append_audit(
        self,
        *,
        at: datetime,
        action: str,
        entity_type: str,
        entity_id: str | int,
        details: dict[str, Any] | None = None,
        actor_organisation_id: int | None = None,
        actor_operator_id: int | None = None,
    ) -> AuditEntry:
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK_KEY})
        head = self.session.execute(
            select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        fields: dict[str, Any] = {
            "seq": seq,
            "at": at,
            "actor_organisation_id": actor_organisation_id,
            "actor_operator_id": actor_operator_id,
            "action": action,
            "entity_type": entity_type,
            "entity_id": str(entity_id),
            "details": details or {},
            "prev_hash": prev,
        }
        entry = AuditEntry(**fields, entry_hash=compute_entry_hash(**fields))
        self.session.add(entry)
        self._flush("audit entry")
        return entry

    def audit_entries(self) -> Iterator[AuditRecord]:
        yield from self.session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).yield_per(500)

    # --- notification outbox --------------------------------------------------------------

    def enqueue_notification(
        self, *, organisation_id: int, event: str, payload: dict[str, Any], now: datetime, request_id: str | None = None
    ) -> OutboxMessage:
        row = OutboxMessage(
            organisation_id=organisation_id,
            request_id=request_id,
            event=event,
            payload=payload,
            state=OutboxState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        self.session.add(row)
        self._flush("notification")
        return row

    def notifications(self, organisation_id: int) -> Sequence[OutboxMessage]:
        return self.session.scalars(
            select(OutboxMessage).where(OutboxMessage.organisation_id == organisation_id).order_by(OutboxMessage.id)
        ).all()

    def due_notifications(self, now: datetime, limit: int = 100) -> Sequence[tuple[OutboxMessage, str]]:
        """Pending messages whose next attempt is due, for organisations with a webhook, with its URL."""
        rows = self.session.execute(
            select(OutboxMessage, Organisation.webhook_url)
            .join(Organisation, Organisation.id == OutboxMessage.organisation_id)
            .where(
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.next_attempt_at <= now,
                Organisation.webhook_url.is_not(None),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
        return [(message, url) for message, url in rows]

    def record_delivery(
        self,
        message_id: int,
        *,
        attempts_before: int,
        now: datetime,
        delivered: bool,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        dead: bool = False,
    ) -> bool:
        """Compare-and-set on the attempt count, so two workers never both record one attempt."""
        values: dict[str, Any] = {"attempts": attempts_before + 1, "last_error": error}
        if delivered:
            values.update(state=OutboxState.DELIVERED, delivered_at=now)
        elif dead:
            values.update(state=OutboxState.DEAD)
        else:
            values.update(next_attempt_at=next_attempt_at or now)
        result = self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.attempts == attempts_before,
            )
            .values(**values)
        )
        return result.rowcount == 1

    # --- housekeeping ---------------------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        """Rows per table — lets tests prove a refused step left nothing behind."""
        return {
            table.name: self.session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in Base.metadata.sorted_tables
        }
