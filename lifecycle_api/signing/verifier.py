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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any


def signature_checker(key: Any, signature_algorithm: Any) -> Callable[[bytes, bytes], None]:
    """A verifier for (signature, data) under `key` for one AlgorithmIdentifier, with the
    identifier interpreted once rather than per signature (it costs a fifth of an ECDSA
    verification).  ECDSA and RSA PKCS#1 v1.5 go straight to `verify_signature`; anything
    else (RSASSA-PSS with its parameters) through the full `verify_algorithm_signature`.
    Raises `CmsSignatureError` like the latter."""
    from icao_pki.cms import CmsSignatureError, hash_from_name, verify_algorithm_signature
    from icao_pki.signature import RsaPublicKey, SignatureError, verify_signature
    from icao_pki.signer import RsaPadding

    family = signature_algorithm.signature_algo
    if family not in ("ecdsa", "rsassa_pkcs1v15") or (family == "ecdsa") == isinstance(key, RsaPublicKey):
        return lambda signature, data: _ignore(verify_algorithm_signature(key, signature_algorithm, signature, data))
    hash_algorithm = hash_from_name(signature_algorithm.hash_algo)

    def check(signature: bytes, data: bytes) -> None:
        try:
            verify_signature(key, signature, data, hash_algorithm, ecdsa_format="der", rsa_padding=RsaPadding.PKCS1V15)
        except SignatureError as exc:
            raise CmsSignatureError(str(exc), code="signature") from None

    return check


def _ignore(_: object) -> None:
    return None


class VerifierUnavailable(Exception):
    """The worker could not answer: treat every signature of the batch as unverified."""


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the worker process
    from asn1crypto import algos

    from icao_pki.cms import CmsSignatureError, certificate_public_key, load_certificate_cached

    checkers: dict[tuple[bytes, bytes], Callable[[bytes, bytes], None]] = {}
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        job, certificate, algorithm, pairs = message
        check = checkers.get((certificate, algorithm))
        if check is None:
            key = certificate_public_key(load_certificate_cached(certificate))
            check = checkers[(certificate, algorithm)] = signature_checker(
                key, algos.SignedDigestAlgorithm.load(algorithm))
        failed: list[tuple[int, str]] = []
        for index, (signature, data) in enumerate(pairs):
            try:
                check(signature, data)
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
