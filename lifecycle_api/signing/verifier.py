"""Verification of the service's signatures in a worker process, before any SOD leaves.

Why: STYLE.md wants every signature verified after it is made (a token returning garbage
must not put an EF.SOD on a chip that fails Passive Authentication at every border).  An
ECDSA P-256 verification with `cryptography` costs about as much CPU as the SoftHSM2
signature itself and holds the GIL, so verifying inline halves the service's rate.  The
verification is independent of the next signature, so it can run on another core: the
service signs chunk k+1 while this worker verifies chunk k, and the batch is returned only
after the worker has answered for every signature of it.  The guarantee is unchanged — no
unverified SOD is handed out — only the work moved.

The worker is a fresh interpreter (no inherited PKCS#11 session or database connection); it
holds no key, only certificates' public keys.  If it dies or answers garbage the batch fails
closed (`VerifierUnavailable`), and the next batch starts a new worker.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any


class VerifierUnavailable(Exception):
    """The worker could not answer: treat every signature of the batch as unverified."""


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the worker process
    from asn1crypto import algos

    from icao_pki.cms import (
        CmsSignatureError,
        certificate_public_key,
        load_certificate_cached,
        verify_algorithm_signature,
    )

    keys: dict[bytes, Any] = {}
    algorithms: dict[bytes, algos.SignedDigestAlgorithm] = {}
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        job, certificate, algorithm, pairs = message
        key = keys.get(certificate)
        if key is None:
            key = keys[certificate] = certificate_public_key(load_certificate_cached(certificate))
        sigalg = algorithms.get(algorithm)
        if sigalg is None:
            sigalg = algorithms[algorithm] = algos.SignedDigestAlgorithm.load(algorithm)
        failed: list[tuple[int, str]] = []
        for index, (signature, data) in enumerate(pairs):
            try:
                verify_algorithm_signature(key, sigalg, signature, data)
            except CmsSignatureError as exc:
                failed.append((index, str(exc)))
        conn.send((job, len(pairs), failed))


@dataclass
class ProcessVerifier:
    """One worker process; `submit` chunks, then `collect` every verdict (in order)."""

    _process: Any = field(default=None, init=False, repr=False)
    _conn: Connection | None = field(default=None, init=False, repr=False)
    _next_job: int = field(default=0, init=False, repr=False)
    _pending: list[tuple[int, int]] = field(default_factory=list, init=False, repr=False)

    def _ensure(self) -> Connection:
        if self._conn is None or self._process is None or self._process.poll() is not None:
            self.close()
            ours, theirs = socket.socketpair()
            # a fresh interpreter (not multiprocessing's spawn, which re-imports __main__):
            # nothing of this process — PKCS#11 session, database connections — is inherited
            process = subprocess.Popen(
                [sys.executable, "-c", f"from lifecycle_api.signing.verifier import serve_fd; serve_fd({theirs.fileno()})"],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
            )  # fmt: skip
            theirs.close()
            self._process, self._conn = process, Connection(ours.detach())
        return self._conn

    def submit(self, certificate: bytes, signature_algorithm: bytes, pairs: Sequence[tuple[bytes, bytes]]) -> int:
        """Queue (signature, signed data) pairs for verification under the certificate's key."""
        try:
            conn = self._ensure()
            job = self._next_job
            self._next_job += 1
            conn.send((job, certificate, signature_algorithm, list(pairs)))
        except (OSError, EOFError, ValueError) as exc:
            self.close()
            raise VerifierUnavailable(f"signature verifier unavailable: {exc}") from None
        self._pending.append((job, len(pairs)))
        return job

    def collect(self) -> dict[int, list[tuple[int, str]]]:
        """Wait for every submitted job; {job: [(index, why)] of failed signatures}."""
        results: dict[int, list[tuple[int, str]]] = {}
        pending, self._pending = self._pending, []
        try:
            for job, count in pending:
                assert self._conn is not None
                answer_job, answered, failed = self._conn.recv()
                if answer_job != job or answered != count:
                    raise VerifierUnavailable(f"verifier answered job {answer_job} ({answered}) for {job} ({count})")
                results[job] = failed
        except (OSError, EOFError, ValueError, AssertionError, TypeError) as exc:
            self.close()
            raise VerifierUnavailable(f"signature verifier failed: {exc}") from None
        except VerifierUnavailable:
            self.close()
            raise
        return results

    def close(self) -> None:
        conn, process = self._conn, self._process
        self._conn = self._process = None
        self._pending = []
        if conn is not None:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
            conn.close()
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def serve_fd(fd: int) -> None:  # pragma: no cover - the worker process's entry point
    _serve(Connection(fd))
