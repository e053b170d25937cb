"""The SOD worker: a second process that does everything of an EF.SOD but most signatures.

Why: the decree's limits make the DS signing service count and check every signature, and
STYLE.md makes it verify every signature it makes; on a software token an ECDSA P-256
verification costs about as much CPU as the signature itself, and Python's share (hashing
the data groups, the LDSSecurityObject, the signed attributes, the assembly) adds a third.
In one thread that is half the HSM's rate.  None of it needs the key, the database or the
counters, so it moves here, and the service's thread does only what must stay with the key
and the counters: reserve, check the usage window, sign.  For chunk k the worker prepares
chunk k+2 (LDSSecurityObject and signed attributes) and finishes chunk k-1 (DER signature,
verification under the DS certificate's key, assembly) while the service signs chunk k.

With the service's signing thread doing nothing but sign, it becomes the bottleneck on a
machine whose CPUs also run the software HSM, while the worker has time left.  So the worker
also signs the tail of each chunk but the last two (`DsSigningService._delegate`: as many
items as it keeps up with; at the batch's end it is busy verifying) through its own login to
the token: the service sends its key store's configuration (`KeyStoreConfig`; the PIN is read
here from its source, an environment variable or a file, never sent) and shares work only
once the login has worked.  The service reserves and counts those slots and checks the key's
usage window for them with the injected clock, with a margin (`DELEGATION_MARGIN`); the
worker signs only until that margin has passed on the machine's monotonic clock, so a stalled
worker cannot sign on a stale check.  Its answer says how many signatures it made: those are
counted, the rest given back.

The guarantee is the inline path's: a SOD leaves only once its signature has been verified.
The worker is a fresh interpreter (no inherited PKCS#11 session or database connection; it
holds the certificates of the templates it was given and, for its share, its own session on
the token, whose keys never leave it).  If it dies, hangs or answers out of order, the batch
fails closed (`WorkerUnavailable`) and the next batch starts a new one; a share it held then
stays reserved, as a crash leaves slots: wasted, never exceeding.

A process, not a thread: python-pkcs11 (0.10) releases the GIL in C_Sign and `cryptography` in
a verification, so verifying could run in a thread; but the worker's share of the signatures is
made while the service signs, and python-pkcs11 initialises the module without locking
(C_Initialize(NULL)), so two threads of one process may not be in it at once
(`icao_pki.keystore`): in one process the share would wait for the service's signatures.  No
reader thread on the service's side either: its socket is non-blocking, every send drains what
the worker has answered when it cannot write, and the signing loop drains between signatures
(`poll`), so neither side can block the other.
Messages are length-prefixed pickles.

Protocol (pickled tuples over a socket pair, in order):

* ``("hsm", config)`` → ``("hsm", 0, error | None)`` — log in to the token;
* ``("template", id, reference_sod, certificate, hash, ec, label)`` — a template cut from a SOD
  the service built and verified with `build_sod` (`SodTemplate.from_reference`, recomputed
  here), with the DS certificate whose key must verify its signatures and that key's label;
* ``("prep", chunk, hash, signing_time, items)`` → ``("prepped", chunk, attrs | None, error)``;
* ``("finish", id, chunk, start, parts, last)`` with ``parts[i]`` (item ``start + i`` of the
  chunk) = ``(template_id, raw_signature)`` or ``(None, sod)`` for a SOD the service built
  itself → ``("finished", id, sods, failure, 0)`` where ``failure`` is ``(index, why)`` of the
  first signature of the part that does not verify; ``last`` ends the chunk;
* ``("sign", id, chunk, start, end, template_id, hash, rsa_padding, deadline)`` → ``("finished",
  id, sods, failure, signed)``: items ``start…end`` signed here, verified and assembled;
  ``failure`` also when the deadline passed or the HSM refused; ``signed`` counts the
  signatures made;
* ``("drop", chunk)``; ``("stats",)`` → ``("stats", 0, {...})``; ``None`` ends the worker.
"""

from __future__ import annotations

import pickle
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: how long the service waits for one answer before it gives the worker up
ANSWER_TIMEOUT = 60.0
#: socket buffers: a chunk's answer (128 SODs) is ~260 kB, a chunk of data groups can be megabytes
_BUFFER = 4 << 20
_READ = 256 << 10
_HEADER = struct.Struct("!I")


def _frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = sock.recv(size - len(buffer))
        if not chunk:
            raise EOFError("the service closed the connection")
        buffer += chunk
    return bytes(buffer)


class WorkerUnavailable(Exception):
    """The worker could not answer: nothing it has not answered for may be handed out."""


PrepItem = tuple[Any, Any, Any]  # (data_groups | None, dg_hashes | None, lds_version | None)


def _serve(sock: socket.socket) -> None:  # pragma: no cover - runs in the worker process
    from icao_pki.cms import CmsSignatureError, certificate_public_key, load_certificate_cached
    from icao_pki.signature import plain_to_der
    from icao_pki.signer import HashAlgorithm, RsaPadding
    from icao_pki.sod import build_lds_security_object, hash_constructor

    from .sod_template import SodTemplate
    from .verifier import signature_checker

    templates: dict[int, tuple[SodTemplate, Callable[[bytes, bytes], None], bool, str | None]] = {}
    builder: SodTemplate | None = None
    pending: dict[int, tuple[list[bytes], list[bytes], datetime]] = {}
    hsm: Any = None  # the key store, once the service has given its configuration and the login worked
    signers: dict[str, Any] = {}

    def send(message: Any) -> None:
        sock.sendall(_frame(message))

    while True:
        try:
            (size,) = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
            message = pickle.loads(_recv_exactly(sock, size))
        except (EOFError, OSError):
            return
        if message is None:
            return
        kind = message[0]
        if kind == "hsm":
            try:
                from icao_pki.keystore import KeyStore

                hsm = KeyStore.open(message[1])
                send(("hsm", 0, None))
            except Exception as exc:  # the service signs everything itself then
                hsm = None
                send(("hsm", 0, f"{type(exc).__name__}: {exc}"))
        elif kind == "template":
            _, template_id, reference, certificate, hash_name, ec, label = message
            template = SodTemplate.from_reference(reference, HashAlgorithm(hash_name))
            if template is None:
                send(("error", template_id, "the template could not be cut from its reference SOD"))
                continue
            key = certificate_public_key(load_certificate_cached(certificate))
            templates[template_id] = (template, signature_checker(key, template.signature_algorithm), ec, label)
            builder = template
        elif kind == "prep":
            _, chunk, hash_name, signing_time, items = message
            algorithm = HashAlgorithm(hash_name)
            try:
                assert builder is not None, "no template before the first chunk"
                econtents, attrs = [], []
                hasher, digest = hash_constructor(algorithm), hash_constructor(builder.hash_algorithm)
                before, after = builder.attribute_frame(signing_time)  # one signingTime per chunk
                for data_groups, dg_hashes, lds_version in items:
                    # the service checked every data group's TLV (`DsSigningService._check`)
                    hashes = dg_hashes if data_groups is None else {n: hasher(dg).digest() for n, dg in data_groups.items()}
                    econtent = build_lds_security_object(hashes, algorithm, lds_version)
                    econtents.append(econtent)
                    attrs.append(before + digest(econtent).digest() + after)
            except Exception as exc:  # the service checked the input: this is a defect, fail closed
                send(("prepped", chunk, None, f"{type(exc).__name__}: {exc}"))
                continue
            pending[chunk] = (econtents, attrs, signing_time)
            send(("prepped", chunk, attrs, None))
        elif kind == "finish":
            _, finish_id, chunk, start, parts, last = message
            econtents, attrs, signing_time = pending.pop(chunk) if last else pending[chunk]
            sods: list[bytes] = []
            failure: tuple[int, str] | None = None
            for index, (template_id, value) in enumerate(parts):
                if template_id is None:
                    sods.append(value)  # built and verified by the service (`build_sod`)
                    continue
                template, check, ec, _ = templates[template_id]
                signature = plain_to_der(value) if ec else value
                try:
                    check(signature, attrs[start + index])
                except CmsSignatureError as exc:
                    failure = (index, str(exc))
                    break
                sods.append(template.assemble(econtents[start + index], signing_time, signature, attrs[start + index]))
            send(("finished", finish_id, sods, failure, 0))
        elif kind == "sign":
            # items start…end of a chunk, counted and window-checked by the service, signed here
            # with the template's key, verified and assembled as any other (module doc)
            _, finish_id, chunk, start, end, template_id, hash_name, rsa_padding, deadline = message
            econtents, attrs, signing_time = pending[chunk]
            template, check, ec, label = templates[template_id]
            algorithm = HashAlgorithm(hash_name)
            sods, failure, signed = [], None, 0
            try:
                if hsm is None or label is None:
                    raise RuntimeError("this worker holds no HSM session")
                signer = signers.get(label)
                if signer is None:
                    signer = signers[label] = hsm.signer(label)
                for index in range(start, end):
                    if time.monotonic() > deadline:  # the service's window check is no longer fresh
                        failure = (index - start, "late: the service's usage-window check expired before signing")
                        break
                    raw = signer.sign(attrs[index], algorithm, RsaPadding(rsa_padding))
                    signed += 1
                    signature = plain_to_der(raw) if ec else raw
                    try:
                        check(signature, attrs[index])
                    except CmsSignatureError as exc:
                        failure = (index - start, str(exc))
                        break
                    sods.append(template.assemble(econtents[index], signing_time, signature, attrs[index]))
            except Exception as exc:  # the HSM refused: what was signed is counted, the rest given back
                failure = (len(sods), f"{type(exc).__name__}: {exc}")
            send(("finished", finish_id, sods, failure, signed))
        elif kind == "drop":
            pending.pop(message[1], None)
        elif kind == "stats":  # what it holds between batches: nothing of a finished chunk
            send(("stats", 0, {"pending_chunks": len(pending), "templates": len(templates)}))


def serve_fd(fd: int) -> None:  # pragma: no cover - the worker process's entry point
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    try:
        _serve(sock)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the service is gone (closed, or killed): nothing to answer to


@dataclass
class SodWorker:
    """The service's side of one worker process (not thread-safe: the service holds its lock)."""

    answer_timeout: float = ANSWER_TIMEOUT
    _process: Any = field(default=None, init=False, repr=False)
    _sock: socket.socket | None = field(default=None, init=False, repr=False)
    _inbox: bytearray = field(default_factory=bytearray, init=False, repr=False)
    _early: dict[tuple[str, int], Any] = field(default_factory=dict, init=False, repr=False)
    _templates: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _next_chunk: int = field(default=0, init=False, repr=False)
    _next_finish: int = field(default=0, init=False, repr=False)
    _hsm: str | None = field(default=None, init=False, repr=False)

    @property
    def alive(self) -> bool:
        return self._sock is not None and self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """A fresh worker unless the current one is alive (a new one knows no template)."""
        if self.alive:
            return
        self.close()
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        # a fresh interpreter (not multiprocessing's spawn, which re-imports __main__):
        # nothing of this process — PKCS#11 session, database connections — is inherited
        self._process = subprocess.Popen(
            [sys.executable, "-c", f"from lifecycle_api.signing.worker import serve_fd; serve_fd({theirs.fileno()})"],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._inbox = bytearray()
        self._early, self._templates = {}, {}
        self._hsm = None

    def knows(self, template_key: int) -> int | None:
        return self._templates.get(template_key)

    def template(self, template_key: int, reference_sod: bytes, certificate: bytes, hash_name: str, ec: bool,
                 label: str | None = None) -> int:
        """Register the template of a lease (by a key the service chooses); returns its id.
        `label`: the HSM key the worker may sign with for it (`sign`)."""
        template_id = len(self._templates)
        self._send(("template", template_id, reference_sod, certificate, hash_name, ec, label))
        self._templates[template_key] = template_id
        return template_id

    def open_hsm(self, config: Any) -> None:
        """Let the worker log in to the token with the service's key store configuration (its PIN
        source: an environment variable or a file, read in the worker); `can_sign` tells when
        the login has worked."""
        self._send(("hsm", config))
        self._hsm = "opening"

    @property
    def can_sign(self) -> bool:
        if self._hsm == "opening" and ("hsm", 0) in self._early:
            (error,) = self._early.pop(("hsm", 0))
            self._hsm = "ready" if error is None else f"refused: {error}"
        return self._hsm == "ready"

    @property
    def hsm_state(self) -> str | None:
        return self._hsm

    def sign(self, chunk: int, start: int, end: int, template_id: int, hash_name: str, rsa_padding: str,
             deadline: float) -> int:
        """Have the worker sign items ``start…end`` of a prepared chunk (counted and checked by the
        caller) unless `deadline` (time.monotonic) has passed; `finished` takes the answer."""
        finish_id = self._next_finish
        self._next_finish += 1
        self._send(("sign", finish_id, chunk, start, end, template_id, hash_name, rsa_padding, deadline))
        return finish_id

    def stats(self) -> dict[str, int]:
        """What the worker holds now (chunks prepared and not yet ended, templates)."""
        self._send(("stats",))
        (stats,) = self._await("stats", 0)
        return dict(stats)

    def answered(self, finish_id: int) -> bool:
        return ("finished", finish_id) in self._early

    def prep(self, hash_name: str, signing_time: datetime, items: Sequence[PrepItem]) -> int:
        chunk = self._next_chunk
        self._next_chunk += 1
        self._send(("prep", chunk, hash_name, signing_time, list(items)))
        return chunk

    def prepped(self, chunk: int) -> list[bytes]:
        attrs, error = self._await("prepped", chunk)
        if error is not None:
            self.close()
            raise WorkerUnavailable(f"SOD worker could not prepare a chunk: {error}")
        return list(attrs)

    def finish(self, chunk: int, start: int, parts: Sequence[tuple[int | None, bytes]], last: bool = True) -> int:
        """Hand over signatures of items ``start…`` of a chunk; returns the id `finished` takes."""
        finish_id = self._next_finish
        self._next_finish += 1
        self._send(("finish", finish_id, chunk, start, list(parts), last))
        return finish_id

    def finished(self, finish_id: int) -> tuple[list[bytes], tuple[int, str] | None, int]:
        """(SODs, first failure as (index, why) or None, signatures the worker made itself)."""
        sods, failure, signed = self._await("finished", finish_id)
        return list(sods), failure, signed

    def drop(self, chunk: int) -> None:
        if self.alive:
            self._send(("drop", chunk))

    def poll(self) -> None:
        """Take in whatever the worker has answered, without waiting (call it between signatures)."""
        if self._sock is not None:
            self._pump(0.0)

    def _send(self, message: Any) -> None:
        if self._sock is None:
            raise WorkerUnavailable("SOD worker not started")
        data = memoryview(_frame(message))
        deadline = time.monotonic() + self.answer_timeout
        try:
            while data:
                try:
                    data = data[self._sock.send(data):]
                except BlockingIOError:
                    # the worker is not reading, perhaps because it waits to write an answer
                    # we have not taken yet: take it, then wait until we may write again
                    if time.monotonic() >= deadline or not self.alive:
                        raise WorkerUnavailable("SOD worker does not read") from None
                    self._pump(1.0, want_write=True)
        except OSError as exc:
            self.close()
            raise WorkerUnavailable(f"SOD worker unavailable: {exc}") from None

    def _pump(self, timeout: float, *, want_write: bool = False) -> None:
        """Wait up to `timeout` for the socket; read every complete answer into `_early`."""
        sock = self._sock
        assert sock is not None
        readable, _, _ = select.select([sock], [sock] if want_write else [], [], timeout)
        if not readable:
            return
        try:
            while True:
                data = sock.recv(_READ)  # not _BUFFER: recv allocates what it is asked for
                if not data:
                    raise EOFError("the worker closed the connection")
                self._inbox += data
                if len(data) < _READ:
                    break
        except BlockingIOError:
            pass
        except (OSError, EOFError) as exc:
            self.close()
            raise WorkerUnavailable(f"SOD worker failed: {exc}") from None
        inbox = self._inbox
        while len(inbox) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(inbox)
            if len(inbox) < _HEADER.size + size:
                break
            message = pickle.loads(inbox[_HEADER.size:_HEADER.size + size])
            del inbox[:_HEADER.size + size]
            if not isinstance(message, tuple) or message[0] not in ("prepped", "finished", "hsm", "stats"):
                self.close()
                why = message[-1] if isinstance(message, tuple) else message
                raise WorkerUnavailable(f"SOD worker failed: {why!r}")
            self._early[(message[0], message[1])] = message[2:]

    def _await(self, kind: str, chunk: int) -> Any:
        """The answer of that kind for that chunk; answers to other chunks are kept for later."""
        deadline = time.monotonic() + self.answer_timeout
        while (kind, chunk) not in self._early:
            if self._sock is None:
                raise WorkerUnavailable("SOD worker not started")
            if time.monotonic() >= deadline or not self.alive:
                self.close()
                raise WorkerUnavailable("SOD worker did not answer")
            self._pump(min(1.0, max(0.0, deadline - time.monotonic())))
        return self._early.pop((kind, chunk))

    def close(self) -> None:
        sock, process = self._sock, self._process
        self._sock = self._process = None
        self._early, self._templates, self._inbox = {}, {}, bytearray()
        self._hsm = None
        if sock is not None:
            try:
                sock.setblocking(True)
                sock.settimeout(1.0)
                sock.sendall(_frame(None))
            except OSError:
                pass
            sock.close()
        if process is not None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
