"""PostgreSQL-specific proofs: the migrations, and compare-and-set under real concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from icao_pki.policy import DocumentType, Role
from lifecycle_api.errors import CounterExhausted
from lifecycle_api.store import KeyState, Store
from lifecycle_api.store.migrate import upgrade
from tests.api.postgres_support import PgCluster
from tests.api.test_migrations import _diff
from tests.api.world import World

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_postgres_migrations_match_models(pg: PgCluster) -> None:
    url = pg.create_database()
    upgrade(url)
    assert _diff(url) == []


def test_postgres_signature_reservations_never_exceed_max(pg: PgCluster) -> None:
    store = Store(pg.create_database())
    store.create_schema()
    with store.transaction() as tx:
        key_id = tx.add_key(hsm_label="passport-ds-00001", role=Role.DS, document_type=DocumentType.PASSPORT,
                            algorithm="brainpoolP256r1", max_signatures=25, state=KeyState.ACTIVE, now=NOW).id
    wins = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        for _ in range(10):
            try:
                with store.transaction() as tx:
                    tx.reserve_signatures(key_id, 1)
                wins.append(1)
            except CounterExhausted:
                pass

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.transaction() as tx:
        key = tx.key(key_id)
    store.dispose()
    assert len(wins) == 25 and key.signatures_reserved == 25


@pytest.mark.parametrize("world", ["postgresql"], indirect=True)
def test_postgres_concurrent_countersign_one_wins(world: World) -> None:
    rid = world.submit().json()["id"]
    digest = world.application_sha256(rid)
    documents = []
    for _ in range(4):
        content = {"kind": "countersignature", "organisation_id": world["coyeu"].organisation_id,
                   "request_id": rid, "application_sha256": digest, "nonce": len(documents)}
        documents.append(world.sign("coyeu", content))
    statuses: list[int] = []
    barrier = threading.Barrier(len(documents))

    def worker(document: str) -> None:
        barrier.wait()
        r = world.client.post(f"/v1/requests/{rid}/countersign", json={"document": document},
                              headers=world["coyeu"].headers)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(d,)) for d in documents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 409, 409, 409]
    body = world.client.get(f"/v1/requests/{rid}", headers=world["provider"].headers).json()
    assert [s["purpose"] for s in body["signatures"]] == ["application", "countersignature"]
    assert world.client.get("/v1/audit/verify", headers=world["provider"].headers).json()["ok"] is True
