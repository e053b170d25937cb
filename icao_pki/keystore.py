"""The PKCS#11 key store: the only module of icao-pki that imports `pkcs11`.

Private keys are generated on the token as sensitive, non-extractable, sign-only objects
and never leave it; everything else receives a `Pkcs11Signer`.  Facts measured with
python-pkcs11 on SoftHSM2 that shape this module:

* the library is initialised without locking and two threads in it at once crash the
  process, so every PKCS#11 call runs under one process-wide lock (scale by processes);
* login state is per process (a second login raises UserAlreadyLoggedIn; closing the
  logged-in session logs all sessions out), so one logged-in session per token per
  process is shared by every `KeyStore` object;
* a forked child must reinitialise the library, so sessions and key handles are tagged
  with the pid that opened them and reopened lazily in a child;
* a token created after C_Initialize is invisible until the library is reinitialised;
* the EC point comes wrapped in a DER OCTET STRING; there is no ECDSA-with-hash
  mechanism (hash outside, sign with CKM_ECDSA, output is raw r||s).

Key labels name document type, role and sequence (``passport-ds-00007``) and are the only
way keys are found: SoftHSM assigns random slot ids.  A destroyed key leaves its public
key on the token as a tombstone, so a sequence number is never reused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pkcs11
from asn1crypto import core as asn1_core
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11_errors
from pkcs11.util.ec import encode_named_curve_parameters

from .clock import Clock, SystemClock
from .curves import Curve, curve_by_name, curve_by_oid
from .signature import EcPublicKey, RsaPublicKey, build_spki, pad_plain
from .signer import HashAlgorithm, KeyKind, RsaPadding

DEFAULT_SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
PIN_ENV = "ICAO_PKI_HSM_PIN"
PIN_FILE_ENV = "ICAO_PKI_HSM_PIN_FILE"

EC_SPECS = ("brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1", "secp256r1", "secp384r1", "secp521r1")
RSA_SPECS = ("rsa2048", "rsa3072", "rsa4096")
KEY_SPECS = EC_SPECS + RSA_SPECS

_LABEL_RE = re.compile(r"^(?P<doc>[a-z0-9]+)-(?P<role>[a-z0-9]+)-(?P<seq>\d{5})$")


class KeyStoreError(Exception):
    """Root of key-store errors.  Messages never contain a PIN."""


class KeyStoreConfigError(KeyStoreError):
    pass


class TokenNotFound(KeyStoreError):
    pass


class LoginFailed(KeyStoreError):
    pass


class KeyNotFound(KeyStoreError):
    pass


class KeyExists(KeyStoreError):
    pass


class KeyInactive(KeyStoreError):
    """The key was deactivated or destroyed; it may no longer sign."""


# --- configuration ------------------------------------------------------------------------


def default_module_path() -> str:
    for candidate in DEFAULT_SOFTHSM_MODULES:
        if os.path.exists(candidate):
            return candidate
    return DEFAULT_SOFTHSM_MODULES[0]


class PinSource:
    """Where the user PIN comes from.  Holds no PIN itself; reads it only to log in."""

    def __init__(self, env: str | None = PIN_ENV, file: Path | None = None) -> None:
        self.env = env
        self.file = Path(file) if file else None

    def describe(self) -> str:
        if self.file:
            return f"PIN file {self.file}"
        return f"environment variable {self.env}"

    def read(self) -> str:
        if self.file:
            try:
                pin = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise KeyStoreConfigError(f"cannot read the HSM PIN file {self.file}: {exc.strerror}") from None
        else:
            pin = os.environ.get(self.env or "", "")
        if not pin:
            raise KeyStoreConfigError(f"no HSM PIN: set {self.describe()}")
        return pin

    def __repr__(self) -> str:  # never the PIN
        return f"PinSource({self.describe()})"


@dataclass(frozen=True)
class KeyStoreConfig:
    token_label: str
    module_path: str = field(default_factory=default_module_path)
    pin: PinSource = field(default_factory=PinSource)

    @classmethod
    def from_env(cls, default_pin_file: Path | None = None) -> KeyStoreConfig:
        """ICAO_PKI_PKCS11_MODULE, ICAO_PKI_TOKEN_LABEL, and ICAO_PKI_HSM_PIN or ICAO_PKI_HSM_PIN_FILE."""
        pin_file = os.environ.get(PIN_FILE_ENV)
        if pin_file:
            pin = PinSource(file=Path(pin_file))
        elif os.environ.get(PIN_ENV) or default_pin_file is None:
            pin = PinSource(env=PIN_ENV)
        else:
            pin = PinSource(file=default_pin_file)
        return cls(
            token_label=os.environ.get("ICAO_PKI_TOKEN_LABEL", "icao-pki"),
            module_path=os.environ.get("ICAO_PKI_PKCS11_MODULE") or default_module_path(),
            pin=pin,
        )


@dataclass(frozen=True, order=True)
class KeyLabel:
    """``<document type>-<role>-<sequence>``: names what a key is for and never repeats."""

    document_type: str
    role: str
    sequence: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]+", self.document_type) or not re.fullmatch(r"[a-z0-9]+", self.role):
            raise KeyStoreConfigError(
                f"key label parts must be lower-case letters and digits: {self.document_type!r}, {self.role!r}"
            )
        if not 0 < self.sequence < 100_000:
            raise KeyStoreConfigError(f"key sequence must be 1..99999, got {self.sequence}")

    def __str__(self) -> str:
        return f"{self.document_type}-{self.role}-{self.sequence:05d}"

    @classmethod
    def parse(cls, text: str) -> KeyLabel:
        m = _LABEL_RE.match(text)
        if not m:
            raise KeyStoreConfigError(f"not a key label (expected e.g. passport-ds-00001): {text!r}")
        return cls(m["doc"], m["role"], int(m["seq"]))


@dataclass(frozen=True)
class KeyInfo:
    label: str
    kind: KeyKind
    spec: str
    state: str  # active | deactivated | destroyed
    sensitive: bool | None
    extractable: bool | None
    always_sensitive: bool | None
    never_extractable: bool | None
    can_sign: bool | None
    spki_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind.value,
            "spec": self.spec,
            "state": self.state,
            "sensitive": self.sensitive,
            "extractable": self.extractable,
            "always_sensitive": self.always_sensitive,
            "never_extractable": self.never_extractable,
            "can_sign": self.can_sign,
            "spki_sha256": self.spki_sha256,
        }


# --- audit --------------------------------------------------------------------------------


class KeyAuditSink(Protocol):
    def record(self, event: dict[str, Any]) -> None: ...


class JsonlAuditSink:
    """Append-only, hash-chained JSON lines: each entry carries the SHA-256 of the previous one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            prev = _last_hash(self.path)
            body = {**event, "prev": prev}
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            entry = {**body, "hash": hashlib.sha256(canonical.encode()).hexdigest()}
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def verify(self) -> int:
        """Recompute the chain; return the entry count or raise naming the first broken line."""
        prev = ""
        count = 0
        if not self.path.exists():
            return 0
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            entry = json.loads(line)
            claimed = entry.pop("hash", None)
            canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            if entry.get("prev") != prev or hashlib.sha256(canonical.encode()).hexdigest() != claimed:
                raise KeyStoreError(f"key audit log {self.path} is broken at line {number}")
            prev = claimed
            count += 1
        return count


def _last_hash(path: Path) -> str:
    if not path.exists():
        return ""
    last = ""
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                last = line.decode("utf-8")
    return json.loads(last)["hash"] if last else ""


class NullAuditSink:
    def record(self, event: dict[str, Any]) -> None:
        return None


# --- process-wide PKCS#11 state ------------------------------------------------------------

#: One lock around every PKCS#11 call in this process (see the module docstring).
_LOCK = threading.RLock()


class _ProcessState:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.sessions: dict[tuple[str, str], Any] = {}
        # Login is per process: a second KeyStore reuses the session, so it must prove the
        # same PIN.  Only a keyed digest is kept, never the PIN.
        self.pin_digests: dict[tuple[str, str], bytes] = {}
        self.pin_key = secrets.token_bytes(32)
        self.loaded: set[str] = set()  # modules this process initialised
        self.needs_reinit: set[str] = set()  # modules inherited initialised from a parent process
        self.generation = 0


_STATE = _ProcessState()


def _after_fork_in_child() -> None:
    # Sessions and handles inherited from the parent are unusable; reinitialise lazily.
    global _STATE, _LOCK
    _LOCK = threading.RLock()
    stale = _STATE
    _STATE = _ProcessState()
    _STATE.generation = stale.generation + 1
    _STATE.needs_reinit = stale.loaded | stale.needs_reinit


os.register_at_fork(after_in_child=_after_fork_in_child)


def _locked() -> threading.RLock:
    """The process-wide PKCS#11 lock, looked up now (a fork replaces it).  The lock itself,
    not a generator-based context manager: this is on the path of every signature, and
    `contextlib.contextmanager` cost about 5 µs of each (bench/sign_bench.py, 80 µs raw)."""
    return _LOCK


def _lib(module_path: str) -> Any:
    if not os.path.exists(module_path):
        raise KeyStoreConfigError(f"PKCS#11 module not found: {module_path}")
    try:
        lib = pkcs11.lib(module_path)
    except p11_errors.PKCS11Error as exc:
        raise KeyStoreError(f"cannot load PKCS#11 module {module_path}: {type(exc).__name__}") from None
    if module_path in _STATE.needs_reinit:
        _STATE.needs_reinit.discard(module_path)
        lib.reinitialize()
    _STATE.loaded.add(module_path)
    return lib


def _find_token(lib: Any, label: str) -> Any:
    """The token labelled `label`, re-reading the slots when it is not (yet) visible.

    A token initialised after C_Initialize is invisible until the module is re-initialised; and
    SoftHSM2 builds a slot from token.object, which another process's login rewrites, so a
    process starting at that moment can find the token unlabelled.  Re-initialising is safe
    only while this process holds no session; the pauses are those of the login."""
    for pause in (0.0, *_LOGIN_BACKOFF, None):
        try:
            return lib.get_token(token_label=label)
        except p11_errors.NoSuchToken:
            if _STATE.sessions or pause is None:
                break
        except p11_errors.MultipleTokensReturned:
            raise TokenNotFound(f"more than one PKCS#11 token is labelled {label!r}") from None
        time.sleep(pause)
        lib.reinitialize()
    raise TokenNotFound(f"no PKCS#11 token labelled {label!r} in {lib.so}")


def _login(config: KeyStoreConfig) -> Any:
    """Open the token for a new KeyStore: log in, or check the PIN against this process's login."""
    key = (config.module_path, config.token_label)
    if key in _STATE.sessions:
        if not hmac.compare_digest(_pin_digest(config.pin.read()), _STATE.pin_digests[key]):
            raise LoginFailed(
                f"HSM login to token {config.token_label!r} failed: incorrect PIN (from {config.pin.describe()})"
            )
        return _STATE.sessions[key]
    return _open_session(config)


#: Pauses before each further login attempt after a transient refusal (seconds).
_LOGIN_BACKOFF = (0.02, 0.1, 0.3, 1.0)


def _open_with_retries(lib: Any, token: Any, config: KeyStoreConfig, pin: str) -> Any:
    """C_OpenSession + C_Login, absorbing SoftHSM2's file-store races.

    Every login rewrites SoftHSM2's token.object (it clears CKF_USER_PIN_COUNT_LOW), and a process
    that loads the token while another one is rewriting it can read a token with no user PIN blob:
    it answers CKR_USER_PIN_NOT_INITIALIZED (or CKR_GENERAL_ERROR) until the module is
    re-initialised, because the PIN blobs are read only when the slot is built.  Such a refusal
    made no login, so trying again is safe; re-initialising is safe only while this process holds
    no other session of the module.  A token that really has no user PIN still fails, just later.
    """
    for pause in _LOGIN_BACKOFF:
        try:
            return token.open(user_pin=pin, rw=True)
        except (p11_errors.GeneralError, p11_errors.UserPinNotInitialized):
            pass
        time.sleep(pause)
        if not any(module == config.module_path for module, _label in _STATE.sessions):
            lib.reinitialize()
            token = _find_token(lib, config.token_label)
    return token.open(user_pin=pin, rw=True)


def _pin_digest(pin: str) -> bytes:
    return hmac.new(_STATE.pin_key, pin.encode(), hashlib.sha256).digest()


def _open_session(config: KeyStoreConfig) -> Any:
    """The process's logged-in session for this token, logging in if there is none yet."""
    key = (config.module_path, config.token_label)
    session = _STATE.sessions.get(key)
    if session is not None:
        return session
    lib = _lib(config.module_path)
    token = _find_token(lib, config.token_label)
    pin = config.pin.read()
    try:
        session = _open_with_retries(lib, token, config, pin)
    except p11_errors.UserPinNotInitialized:
        raise LoginFailed(
            f"HSM login to token {config.token_label!r} failed: the token's user PIN is not initialised"
            " (icao-pki hsm init sets it)"
        ) from None
    except p11_errors.PinIncorrect:
        raise LoginFailed(
            f"HSM login to token {config.token_label!r} failed: incorrect PIN (from {config.pin.describe()})"
        ) from None
    except p11_errors.PinLocked:
        raise LoginFailed(f"HSM login to token {config.token_label!r} failed: the user PIN is locked") from None
    except p11_errors.UserAlreadyLoggedIn:
        raise LoginFailed(
            f"token {config.token_label!r} is already logged in by this process through another session"
        ) from None
    except p11_errors.PKCS11Error as exc:
        raise LoginFailed(f"HSM login to token {config.token_label!r} failed: {type(exc).__name__}") from None
    _STATE.pin_digests[key] = _pin_digest(pin)
    del pin
    _STATE.sessions[key] = session
    return session


# --- the key store ------------------------------------------------------------------------


class KeyStore:
    """Keys of one token.  Cheap to create: all instances of a process share one login."""

    def __init__(
        self, config: KeyStoreConfig, *, audit: KeyAuditSink | None = None, clock: Clock | None = None
    ) -> None:
        self.config = config
        self.audit: KeyAuditSink = audit or NullAuditSink()
        self.clock: Clock = clock or SystemClock()

    @classmethod
    def open(cls, config: KeyStoreConfig, *, audit: KeyAuditSink | None = None, clock: Clock | None = None) -> KeyStore:
        """Open and log in now, so configuration and PIN errors surface at start-up."""
        store = cls(config, audit=audit, clock=clock)
        with _locked():
            _login(config)
        return store

    def _session(self) -> Any:
        return _open_session(self.config)

    @property
    def generation(self) -> tuple[int, int]:
        return (os.getpid(), _STATE.generation)

    # --- generation -------------------------------------------------------------------

    def next_label(self, document_type: str, role: str) -> KeyLabel:
        """A label whose sequence no key of this document type and role ever had (tombstones count)."""
        used = [
            label.sequence for label in self._labels() if label.document_type == document_type and label.role == role
        ]
        return KeyLabel(document_type, role, max(used, default=0) + 1)

    def _labels(self) -> list[KeyLabel]:
        labels = set()
        with _locked():
            for obj in list(self._session().get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})):
                try:
                    labels.add(KeyLabel.parse(obj.label))
                except KeyStoreError:
                    continue
        return sorted(labels)

    def generate_key(self, label: KeyLabel | str, spec: str, *, reason: str = "") -> Pkcs11Signer:
        """Generate a sensitive, non-extractable, sign-only key pair on the token."""
        label = KeyLabel.parse(label) if isinstance(label, str) else label
        text = str(label)
        if spec not in KEY_SPECS:
            raise KeyStoreConfigError(f"unsupported key type {spec!r}; choose one of: {', '.join(KEY_SPECS)}")
        private_template = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        public_template = {
            Attribute.TOKEN: True,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
            Attribute.DERIVE: False,
        }
        with _locked():
            session = self._session()
            if self._find(session, text, ObjectClass.PUBLIC_KEY) is not None:
                raise KeyExists(f"key label {text} is already used on token {self.config.token_label!r}")
            try:
                if spec.startswith("rsa"):
                    session.generate_keypair(
                        KeyType.RSA,
                        int(spec[3:]),
                        store=True,
                        label=text,
                        id=text.encode(),
                        public_template=public_template,
                        private_template=private_template,
                    )
                else:
                    curve = curve_by_name(spec)
                    params = session.create_domain_parameters(
                        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve.oid)}, local=True
                    )
                    params.generate_keypair(
                        store=True,
                        label=text,
                        id=text.encode(),
                        public_template=public_template,
                        private_template=private_template,
                    )
            except p11_errors.PKCS11Error as exc:
                raise KeyStoreError(f"key generation for {text} ({spec}) failed: {type(exc).__name__}") from None
        signer = self.signer(text)
        self.audit.record(
            {
                "event": "key_generated",
                "label": text,
                "spec": spec,
                "token": self.config.token_label,
                "spki_sha256": hashlib.sha256(signer.public_key_info()).hexdigest(),
                "at": _iso(self.clock.now()),
                "reason": reason,
            }
        )
        return signer

    # --- lookup -----------------------------------------------------------------------

    @staticmethod
    def _find(session: Any, label: str, cls: ObjectClass) -> Any | None:
        found = list(session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label}))
        if len(found) > 1:
            raise KeyStoreError(f"{len(found)} objects labelled {label} on the token; labels must be unique")
        return found[0] if found else None

    def signer(self, label: KeyLabel | str) -> Pkcs11Signer:
        text = str(label)
        with _locked():
            session = self._session()
            public = self._find(session, text, ObjectClass.PUBLIC_KEY)
            private = self._find(session, text, ObjectClass.PRIVATE_KEY)
            if public is None:
                raise KeyNotFound(f"no key labelled {text} on token {self.config.token_label!r}")
            if private is None:
                raise KeyInactive(f"key {text} was destroyed; it can no longer sign")
            public_key = _public_key(public)
        return Pkcs11Signer(self, text, public_key)

    def list_keys(self) -> list[KeyInfo]:
        infos = []
        with _locked():
            session = self._session()
            # Materialise first: a nested C_FindObjects while one is active fails (OperationActive).
            for public in list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})):
                label = public.label
                key = _public_key(public)
                private = self._find(session, label, ObjectClass.PRIVATE_KEY)
                attrs = _private_attributes(private) if private is not None else {}
                if private is None:
                    state = "destroyed"
                elif not attrs.get("can_sign"):
                    state = "deactivated"
                else:
                    state = "active"
                infos.append(
                    KeyInfo(
                        label=label,
                        kind=key.kind,
                        spec=_spec_of(key),
                        state=state,
                        sensitive=attrs.get("sensitive"),
                        extractable=attrs.get("extractable"),
                        always_sensitive=attrs.get("always_sensitive"),
                        never_extractable=attrs.get("never_extractable"),
                        can_sign=attrs.get("can_sign"),
                        spki_sha256=hashlib.sha256(build_spki(key)).hexdigest(),
                    )
                )
        return sorted(infos, key=lambda i: i.label)

    def key_info(self, label: KeyLabel | str) -> KeyInfo:
        text = str(label)
        for info in self.list_keys():
            if info.label == text:
                return info
        raise KeyNotFound(f"no key labelled {text} on token {self.config.token_label!r}")

    # --- end of life ------------------------------------------------------------------

    def deactivate(self, label: KeyLabel | str, *, reason: str) -> None:
        """Stop a key from signing (CKA_SIGN=false) while keeping it for the record."""
        text = str(label)
        with _locked():
            private = self._find(self._session(), text, ObjectClass.PRIVATE_KEY)
            if private is None:
                raise KeyNotFound(f"no private key labelled {text}")
            try:
                private[Attribute.SIGN] = False
            except p11_errors.PKCS11Error as exc:
                raise KeyStoreError(f"cannot deactivate {text}: {type(exc).__name__}") from None
        self.audit.record(
            {
                "event": "key_deactivated",
                "label": text,
                "token": self.config.token_label,
                "at": _iso(self.clock.now()),
                "reason": reason,
            }
        )

    def destroy(self, label: KeyLabel | str, *, reason: str) -> dict[str, Any]:
        """Destroy the private key; the public key stays as a tombstone so the label is never reused."""
        text = str(label)
        with _locked():
            session = self._session()
            private = self._find(session, text, ObjectClass.PRIVATE_KEY)
            public = self._find(session, text, ObjectClass.PUBLIC_KEY)
            if private is None:
                raise KeyNotFound(f"no private key labelled {text}")
            spki = build_spki(_public_key(public)) if public is not None else b""
            try:
                private.destroy()
            except p11_errors.PKCS11Error as exc:
                raise KeyStoreError(f"cannot destroy {text}: {type(exc).__name__}") from None
        record = {
            "event": "key_destroyed",
            "label": text,
            "token": self.config.token_label,
            "spki_sha256": hashlib.sha256(spki).hexdigest() if spki else None,
            "at": _iso(self.clock.now()),
            "reason": reason,
        }
        self.audit.record(record)
        return record


class Pkcs11Signer:
    """A `Signer` whose private key stays on the token."""

    def __init__(self, store: KeyStore, label: str, public_key: EcPublicKey | RsaPublicKey) -> None:
        self._store = store
        self.label = label
        self._public_key = public_key
        self._handle: Any = None
        self._handle_generation: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self.label!r} on {self._store.config.token_label!r})"

    @property
    def kind(self) -> KeyKind:
        return self._public_key.kind

    @property
    def curve(self) -> Curve | None:
        return self._public_key.curve if isinstance(self._public_key, EcPublicKey) else None

    @property
    def rsa_bits(self) -> int | None:
        return self._public_key.bits if isinstance(self._public_key, RsaPublicKey) else None

    @property
    def public_key(self) -> EcPublicKey | RsaPublicKey:
        return self._public_key

    def public_key_info(self) -> bytes:
        return build_spki(self._public_key)

    def _private(self) -> Any:
        generation = self._store.generation
        if self._handle is None or self._handle_generation != generation:
            private = KeyStore._find(self._store._session(), self.label, ObjectClass.PRIVATE_KEY)
            if private is None:
                raise KeyInactive(f"key {self.label} was destroyed; it can no longer sign")
            self._handle, self._handle_generation = private, generation
        return self._handle

    def sign(self, data: bytes, hash_algorithm: HashAlgorithm, rsa_padding: RsaPadding = RsaPadding.PKCS1V15) -> bytes:
        hash_algorithm = HashAlgorithm(hash_algorithm)
        if isinstance(self._public_key, EcPublicKey):
            digest = hash_algorithm.digest(data)
            with _locked():
                raw = self._call_sign(digest, Mechanism.ECDSA, None)
            return pad_plain(bytes(raw), self._public_key.curve.order_bytes)
        if RsaPadding(rsa_padding) is RsaPadding.PSS:
            mechanism, mgf = _RSA_PSS[hash_algorithm]
            param = (_HASH_MECHANISMS[hash_algorithm], mgf, hash_algorithm.digest_size)
        else:
            mechanism, param = _RSA_PKCS1[hash_algorithm], None
        with _locked():
            return bytes(self._call_sign(data, mechanism, param))

    def _call_sign(self, data: bytes, mechanism: Mechanism, param: Any) -> bytes:
        try:
            try:
                return self._private().sign(data, mechanism=mechanism, mechanism_param=param)
            except p11_errors.GeneralError:
                # SoftHSM2's file token store answers CKR_GENERAL_ERROR now and then when many
                # processes read it under load; a failed C_Sign made no signature, so one retry
                # with a fresh handle is safe (and callers verify what they get).
                self._handle = None
                return self._private().sign(data, mechanism=mechanism, mechanism_param=param)
        except (
            p11_errors.ObjectHandleInvalid,
            p11_errors.KeyHandleInvalid,
            p11_errors.SessionHandleInvalid,
            p11_errors.SessionClosed,
        ):
            self._handle = None
            raise KeyInactive(f"key {self.label} is no longer available on the token") from None
        except p11_errors.PKCS11Error as exc:
            # A deactivated key (CKA_SIGN=false) is refused with a code python-pkcs11 does not
            # name consistently across versions; ask the token instead of guessing.
            try:
                can_sign = bool(self._private()[Attribute.SIGN])
            except p11_errors.PKCS11Error:
                can_sign = True
            if not can_sign:
                raise KeyInactive(f"key {self.label} is deactivated; it can no longer sign") from None
            raise KeyStoreError(f"signing with {self.label} failed: {type(exc).__name__}") from None


_HASH_MECHANISMS = {
    HashAlgorithm.SHA1: Mechanism.SHA_1,
    HashAlgorithm.SHA224: Mechanism.SHA224,
    HashAlgorithm.SHA256: Mechanism.SHA256,
    HashAlgorithm.SHA384: Mechanism.SHA384,
    HashAlgorithm.SHA512: Mechanism.SHA512,
}
_RSA_PKCS1 = {
    HashAlgorithm.SHA1: Mechanism.SHA1_RSA_PKCS,
    HashAlgorithm.SHA224: Mechanism.SHA224_RSA_PKCS,
    HashAlgorithm.SHA256: Mechanism.SHA256_RSA_PKCS,
    HashAlgorithm.SHA384: Mechanism.SHA384_RSA_PKCS,
    HashAlgorithm.SHA512: Mechanism.SHA512_RSA_PKCS,
}
_RSA_PSS = {
    HashAlgorithm.SHA1: (Mechanism.SHA1_RSA_PKCS_PSS, MGF.SHA1),
    HashAlgorithm.SHA224: (Mechanism.SHA224_RSA_PKCS_PSS, MGF.SHA224),
    HashAlgorithm.SHA256: (Mechanism.SHA256_RSA_PKCS_PSS, MGF.SHA256),
    HashAlgorithm.SHA384: (Mechanism.SHA384_RSA_PKCS_PSS, MGF.SHA384),
    HashAlgorithm.SHA512: (Mechanism.SHA512_RSA_PKCS_PSS, MGF.SHA512),
}


def _public_key(obj: Any) -> EcPublicKey | RsaPublicKey:
    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        oid = asn1_core.ObjectIdentifier.load(bytes(obj[Attribute.EC_PARAMS])).dotted
        point = asn1_core.OctetString.load(bytes(obj[Attribute.EC_POINT])).native  # DER-wrapped on the token
        return EcPublicKey(curve_by_oid(oid), bytes(point))
    if key_type == KeyType.RSA:
        return RsaPublicKey(
            n=int.from_bytes(obj[Attribute.MODULUS], "big"), e=int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
        )
    raise KeyStoreError(f"unsupported key type on token for {obj.label}: {key_type}")


def _private_attributes(obj: Any) -> dict[str, bool | None]:
    def read(attribute: Attribute) -> bool | None:
        try:
            return bool(obj[attribute])
        except p11_errors.PKCS11Error:
            return None

    return {
        "sensitive": read(Attribute.SENSITIVE),
        "extractable": read(Attribute.EXTRACTABLE),
        "always_sensitive": read(Attribute.ALWAYS_SENSITIVE),
        "never_extractable": read(Attribute.NEVER_EXTRACTABLE),
        "can_sign": read(Attribute.SIGN),
    }


def _spec_of(key: EcPublicKey | RsaPublicKey) -> str:
    return key.curve.name if isinstance(key, EcPublicKey) else f"rsa{key.bits}"


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


# --- SoftHSM2 token initialisation ---------------------------------------------------------


def write_softhsm_config(data_dir: Path) -> Path:
    """A SoftHSM2 configuration private to this data folder (SOFTHSM2_CONF points at it)."""
    data_dir = Path(data_dir).resolve()
    tokens = data_dir / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "softhsm2.conf"
    text = f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    if not conf.exists() or conf.read_text() != text:
        conf.write_text(text)
    return conf


def softhsm_token_exists(label: str, env: dict[str, str] | None = None) -> bool:
    util = shutil.which("softhsm2-util")
    if util is None:
        raise KeyStoreConfigError("softhsm2-util not found: install the Debian package softhsm2")
    shown = subprocess.run([util, "--show-slots"], capture_output=True, text=True, env=env, check=False)
    return any(line.strip() == f"Label:            {label}" for line in shown.stdout.splitlines())


def init_softhsm_token(label: str, pin: str, so_pin: str, env: dict[str, str] | None = None) -> bool:
    """Create a SoftHSM2 token (python-pkcs11 cannot); returns False if it already exists."""
    if softhsm_token_exists(label, env):
        return False
    util = shutil.which("softhsm2-util")
    assert util is not None
    result = subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).replace(pin, "***").replace(so_pin, "***").strip()
        raise KeyStoreError(f"softhsm2-util could not initialise token {label!r}: {message}")
    return True
