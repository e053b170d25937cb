"""The PKCS#11 key store on a real SoftHSM2 token."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from icao_pki.keystore import (
    KEY_SPECS,
    JsonlAuditSink,
    KeyExists,
    KeyInactive,
    KeyLabel,
    KeyNotFound,
    KeyStore,
    KeyStoreConfig,
    KeyStoreConfigError,
    KeyStoreError,
    LoginFailed,
    PinSource,
    default_module_path,
    write_softhsm_config,
)
from icao_pki.signature import EcPublicKey, load_spki
from icao_pki.signer import HashAlgorithm, KeyKind, RsaPadding
from tests.support.hsm import require_softhsm

pytestmark = pytest.mark.hsm

REPO = Path(__file__).resolve().parents[1]


def verify_with_cryptography(
    spki: bytes, signature: bytes, data: bytes, hash_algorithm: HashAlgorithm, pad: RsaPadding
) -> None:
    """Verification by `cryptography` alone, independent of icao_pki.signature."""
    public = serialization.load_der_public_key(spki)
    h = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[hash_algorithm.value]
    if isinstance(public, rsa.RSAPublicKey):
        p = padding.PSS(padding.MGF1(h), h.digest_size) if pad is RsaPadding.PSS else padding.PKCS1v15()
        public.verify(signature, data, p, h)
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        half = len(signature) // 2
        der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
        public.verify(der, data, ec.ECDSA(h))


@pytest.mark.parametrize("spec", KEY_SPECS)
def test_keystore_generates_protected_keys_that_sign(keystore: KeyStore, spec: str) -> None:
    label = keystore.next_label("test", "gen")
    signer = keystore.generate_key(label, spec)
    info = keystore.key_info(label)
    # Read back from the token, not from our own template.
    assert info.sensitive is True
    assert info.extractable is False
    assert info.always_sensitive is True
    assert info.never_extractable is True
    assert info.can_sign is True
    assert info.spec == spec
    key = load_spki(signer.public_key_info())
    if spec.startswith("rsa"):
        assert signer.kind is KeyKind.RSA and signer.rsa_bits == int(spec[3:])
        paddings = [RsaPadding.PKCS1V15, RsaPadding.PSS]
    else:
        assert signer.kind is KeyKind.EC and isinstance(key, EcPublicKey)
        assert signer.curve is not None and signer.curve.name == spec
        # The full explicit domain parameters come with the curve, derived from the OID.
        assert signer.curve.generator[0] == 4 and signer.curve.n > 0 and signer.curve.h == 1
        paddings = [RsaPadding.PKCS1V15]
    data = b"document security object " + spec.encode()
    for hash_algorithm in (HashAlgorithm.SHA256, HashAlgorithm.SHA512):
        for pad in paddings:
            signature = signer.sign(data, hash_algorithm, pad)
            if signer.curve is not None:
                assert len(signature) == 2 * signer.curve.order_bytes
            verify_with_cryptography(signer.public_key_info(), signature, data, hash_algorithm, pad)
            with pytest.raises(Exception):  # noqa: B017 - any verification failure
                verify_with_cryptography(signer.public_key_info(), signature, data + b"!", hash_algorithm, pad)


def test_keystore_private_value_cannot_be_read(keystore: KeyStore, keystore_config: KeyStoreConfig) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    label = str(keystore.next_label("test", "secret"))
    keystore.generate_key(label, "secp256r1")
    session = pkcs11.lib(keystore_config.module_path).get_token(token_label=keystore_config.token_label).open()
    try:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            private[Attribute.VALUE]
    finally:
        session.close()


def test_keystore_labels_are_unique_and_never_reused(keystore: KeyStore) -> None:
    first = keystore.next_label("passport", "lbl")
    keystore.generate_key(first, "secp256r1")
    with pytest.raises(KeyExists):
        keystore.generate_key(first, "secp256r1")
    second = keystore.next_label("passport", "lbl")
    assert second.sequence == first.sequence + 1
    keystore.generate_key(second, "secp256r1")
    keystore.destroy(second, reason="test")
    # The destroyed key's public half is a tombstone: its sequence is not handed out again.
    assert keystore.next_label("passport", "lbl").sequence == second.sequence + 1
    assert str(KeyLabel("idcard", "ds", 7)) == "idcard-ds-00007"
    assert KeyLabel.parse("idcard-ds-00007") == KeyLabel("idcard", "ds", 7)
    with pytest.raises(KeyStoreConfigError):
        KeyLabel.parse("ds key 7")


def test_keystore_rejects_unknown_key_type_and_label(keystore: KeyStore) -> None:
    with pytest.raises(KeyStoreConfigError, match="unsupported key type 'p256'"):
        keystore.generate_key(keystore.next_label("test", "bad"), "p256")
    with pytest.raises(KeyNotFound):
        keystore.signer("test-missing-00001")


def test_keystore_deactivate_and_destroy_leave_audit_records(keystore: KeyStore) -> None:
    assert isinstance(keystore.audit, JsonlAuditSink)
    label = keystore.next_label("idcard", "ds")
    signer = keystore.generate_key(label, "brainpoolP256r1")
    signer.sign(b"before", HashAlgorithm.SHA256)
    keystore.deactivate(label, reason="usage window ended")
    assert keystore.key_info(label).state == "deactivated"
    with pytest.raises(KeyInactive, match="deactivated"):
        signer.sign(b"after", HashAlgorithm.SHA256)
    record = keystore.destroy(label, reason="retired after usage window")
    assert record["event"] == "key_destroyed" and record["label"] == str(label)
    assert keystore.key_info(label).state == "destroyed"
    with pytest.raises(KeyInactive):
        signer.sign(b"after", HashAlgorithm.SHA256)
    with pytest.raises(KeyInactive, match="destroyed"):
        keystore.signer(label)
    events = [json.loads(line) for line in keystore.audit.path.read_text().splitlines()]
    mine = [e["event"] for e in events if e["label"] == str(label)]
    assert mine == ["key_generated", "key_deactivated", "key_destroyed"]
    assert keystore.audit.verify() == len(events)


def test_audit_chain_detects_tampering(tmp_path: Path) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    for i in range(3):
        sink.record({"event": "key_generated", "label": f"t-a-0000{i + 1}"})
    assert sink.verify() == 3
    lines = sink.path.read_text().splitlines()
    lines[1] = lines[1].replace("t-a-00002", "t-a-00009")
    sink.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(KeyStoreError, match="broken at line 2"):
        sink.verify()


def test_keystore_eight_threads_sign_at_once(keystore: KeyStore) -> None:
    signers = [
        keystore.generate_key(keystore.next_label("test", "thr"), "secp256r1"),
        keystore.generate_key(keystore.next_label("test", "thr"), "rsa2048"),
    ]
    results: list[tuple[int, bytes, bytes]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(40):
                data = f"thread {n} message {i}".encode()
                which = (n + i) % 2
                sig = signers[which].sign(data, HashAlgorithm.SHA256)
                with lock:
                    results.append((which, data, sig))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 8 * 40
    for which, data, sig in results:
        verify_with_cryptography(signers[which].public_key_info(), sig, data, HashAlgorithm.SHA256, RsaPadding.PKCS1V15)


WORKER = r"""
import json, sys, threading
from icao_pki.keystore import KeyStore, KeyStoreConfig, PinSource
from icao_pki.signer import HashAlgorithm
label, token, pin_env, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = KeyStore.open(KeyStoreConfig(token_label=token, pin=PinSource(env=pin_env)))
signer = store.signer(label)
out, lock = [], threading.Lock()
def work(t):
    for i in range(n):
        data = f"pid-thread {t} {i}".encode()
        sig = signer.sign(data, HashAlgorithm.SHA256)
        with lock:
            out.append((data.hex(), sig.hex()))
threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps(out))
"""


def test_keystore_two_processes_of_eight_threads_sign_at_once(
    keystore: KeyStore, keystore_config: KeyStoreConfig, hsm_env: dict[str, str]
) -> None:
    label = str(keystore.next_label("test", "proc"))
    signer = keystore.generate_key(label, "brainpoolP256r1")
    env = {**os.environ, "SOFTHSM2_CONF": hsm_env["SOFTHSM2_CONF"]}
    args = [sys.executable, "-c", WORKER, label, keystore_config.token_label, keystore_config.pin.env or "", "25"]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO) for _ in range(2)
    ]
    # The parent signs at the same time.
    local = [signer.sign(f"parent {i}".encode(), HashAlgorithm.SHA256) for i in range(50)]
    outputs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr.decode()
        outputs.extend(json.loads(stdout))
    assert len(outputs) == 2 * 8 * 25
    for data_hex, sig_hex in outputs:
        verify_with_cryptography(
            signer.public_key_info(),
            bytes.fromhex(sig_hex),
            bytes.fromhex(data_hex),
            HashAlgorithm.SHA256,
            RsaPadding.PKCS1V15,
        )
    for i, sig in enumerate(local):
        verify_with_cryptography(
            signer.public_key_info(), sig, f"parent {i}".encode(), HashAlgorithm.SHA256, RsaPadding.PKCS1V15
        )


def _sign_in_forked_child(store: KeyStore, label: str, queue: multiprocessing.Queue) -> None:
    try:
        sig = store.signer(label).sign(b"from the child", HashAlgorithm.SHA256)
        queue.put(("ok", sig))
    except BaseException as exc:  # reported to the parent
        queue.put(("error", repr(exc)))


def test_keystore_works_in_a_forked_child(keystore: KeyStore) -> None:
    label = str(keystore.next_label("test", "fork"))
    signer = keystore.generate_key(label, "secp384r1")
    signer.sign(b"parent first", HashAlgorithm.SHA256)  # the parent holds a live session
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_sign_in_forked_child, args=(keystore, label, queue))
    child.start()
    status, value = queue.get(timeout=60)
    child.join(timeout=60)
    assert status == "ok", value
    verify_with_cryptography(
        signer.public_key_info(), value, b"from the child", HashAlgorithm.SHA256, RsaPadding.PKCS1V15
    )
    # And the parent still signs afterwards.
    signer.sign(b"parent after", HashAlgorithm.SHA256)


def test_keystore_wrong_pin_in_same_process_is_refused_without_the_pin(
    keystore: KeyStore, keystore_config: KeyStoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ICAO_PKI_WRONG_PIN", "not-the-pin-31337")
    wrong = KeyStoreConfig(token_label=keystore_config.token_label, pin=PinSource(env="ICAO_PKI_WRONG_PIN"))
    with pytest.raises(LoginFailed) as caught:
        KeyStore.open(wrong)
    assert "incorrect PIN" in str(caught.value)
    assert "not-the-pin-31337" not in str(caught.value) and "not-the-pin-31337" not in repr(caught.value)


def test_keystore_wrong_pin_in_new_process_is_refused_without_the_pin(
    keystore_config: KeyStoreConfig, hsm_env: dict[str, str]
) -> None:
    code = (
        "from icao_pki.keystore import *\n"
        f"KeyStore.open(KeyStoreConfig(token_label={keystore_config.token_label!r}, pin=PinSource(env='WRONG_PIN')))\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": hsm_env["SOFTHSM2_CONF"], "WRONG_PIN": "wrong-pin-4242"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode != 0
    assert "LoginFailed" in result.stderr and "incorrect PIN (from environment variable WRONG_PIN)" in result.stderr
    assert "wrong-pin-4242" not in result.stderr + result.stdout


def test_keystore_missing_pin_and_token_errors(
    keystore_config: KeyStoreConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ICAO_PKI_UNSET_PIN", raising=False)
    with pytest.raises(KeyStoreConfigError, match="no HSM PIN: set environment variable ICAO_PKI_UNSET_PIN"):
        KeyStore.open(KeyStoreConfig(token_label=keystore_config.token_label, pin=PinSource(env="ICAO_PKI_UNSET_PIN")))
    monkeypatch.setenv("ICAO_PKI_UNSET_PIN", "1234")
    with pytest.raises(KeyStoreError, match="no PKCS#11 token labelled 'no-such-token-label'"):
        KeyStore.open(KeyStoreConfig(token_label="no-such-token-label", pin=PinSource(env="ICAO_PKI_UNSET_PIN")))
    with pytest.raises(KeyStoreConfigError, match="PKCS#11 module not found"):
        KeyStore.open(
            KeyStoreConfig(
                token_label="x", module_path="/nonexistent/libpkcs11.so", pin=PinSource(env="ICAO_PKI_UNSET_PIN")
            )
        )
    assert "1234" not in repr(PinSource(env="ICAO_PKI_UNSET_PIN"))


def test_keystore_retries_one_general_error_but_not_two(keystore: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from pkcs11 import exceptions as p11_errors

    signer = keystore.generate_key(keystore.next_label("test", "flaky"), "secp256r1")
    real = signer._private()
    failures = {"left": 1}

    class Flaky:
        def __getitem__(self, attribute):  # type: ignore[no-untyped-def]
            return real[attribute]

        def sign(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if failures["left"]:
                failures["left"] -= 1
                raise p11_errors.GeneralError()
            return real.sign(*args, **kwargs)

    monkeypatch.setattr(signer, "_private", lambda: Flaky())
    sig = signer.sign(b"m", HashAlgorithm.SHA256)  # one transient failure is absorbed
    verify_with_cryptography(signer.public_key_info(), sig, b"m", HashAlgorithm.SHA256, RsaPadding.PKCS1V15)
    failures["left"] = 2
    with pytest.raises(KeyStoreError, match="GeneralError"):
        signer.sign(b"m", HashAlgorithm.SHA256)


def test_keystore_login_sees_a_user_pin_set_after_the_module_loaded(tmp_path: Path) -> None:
    """SoftHSM2 reads the PIN blobs only when a slot is built, so a process that loaded the token
    while another one was rewriting token.object keeps answering CKR_USER_PIN_NOT_INITIALIZED
    (the CI failure of session 1).  Reproduced deterministically: the module is loaded while the
    token has no user PIN, another process sets it, and the login must then succeed."""
    tool = shutil.which("pkcs11-tool")
    require_softhsm()
    if tool is None:
        pytest.skip("pkcs11-tool is not installed (Debian package opensc; `make test` installs it)")
    conf = write_softhsm_config(tmp_path)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "LATE_PIN": "late-pin-8642"}
    module = default_module_path()
    subprocess.run(
        [tool, "--module", module, "--init-token", "--label", "late", "--so-pin", "so-pin-1357"],
        env=env, check=True, capture_output=True,
    )
    code = f"""
import subprocess, sys
import pkcs11
import icao_pki.keystore as ks
from icao_pki.keystore import KeyStore, KeyStoreConfig, LoginFailed, PinSource
from icao_pki.signer import HashAlgorithm
ks._LOGIN_BACKOFF = (0.01, 0.01)
pkcs11.lib({module!r}).get_token(token_label="late")  # the slot is built: no user PIN yet
config = KeyStoreConfig(token_label="late", pin=PinSource(env="LATE_PIN"))
try:
    KeyStore.open(config)
except LoginFailed as exc:
    print("first:", exc)
subprocess.run([{tool!r}, "--module", {module!r}, "--token-label", "late", "--login", "--login-type", "so",
                "--so-pin", "so-pin-1357", "--init-pin", "--pin", "late-pin-8642"], check=True, capture_output=True)
store = KeyStore.open(config)
signer = store.generate_key(store.next_label("test", "late"), "secp256r1")
print("signed:", len(signer.sign(b"m", HashAlgorithm.SHA256)))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "first: HSM login to token 'late' failed: the token's user PIN is not initialised" in result.stdout
    assert "signed: 64" in result.stdout
    assert "late-pin-8642" not in result.stdout + result.stderr
