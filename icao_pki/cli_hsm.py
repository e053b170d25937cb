"""`icao-pki hsm`: the PKCS#11 key store from the command line."""

from __future__ import annotations

import typer
from rich.table import Table

from .console import JsonOption, out, print_json, reporting
from .embedded import DataDir, init_embedded_token
from .keystore import KEY_SPECS, KeyLabel, KeyStoreError

app = typer.Typer(help="The PKCS#11 key store (SoftHSM2 under ./var/ by default).", no_args_is_help=True)


@app.command("init")
def init(
    token_label: str = typer.Option(None, "--token-label", help="Token label (default: ICAO_PKI_TOKEN_LABEL or icao-pki)."),
    as_json: bool = JsonOption,
) -> None:
    """Create the embedded SoftHSM2 token under the data folder (idempotent)."""
    with reporting(KeyStoreError):
        data_dir = DataDir.from_env()
        if not data_dir.uses_embedded_hsm():
            raise KeyStoreError("ICAO_PKI_PKCS11_MODULE is set: initialise that HSM's token with its own tools")
        label = token_label or data_dir.keystore_config().token_label
        created = init_embedded_token(data_dir, label)
        result = {
            "token_label": label,
            "created": created,
            "softhsm2_conf": str(data_dir.softhsm_conf),
            "pin_file": str(data_dir.pin_file),
        }
    if as_json:
        print_json(result)
    else:
        verb = "created" if created else "already exists"
        out.print(f"token {label!r} {verb} (SOFTHSM2_CONF={data_dir.softhsm_conf}, PIN in {data_dir.pin_file})")


@app.command("list")
def list_keys(as_json: bool = JsonOption) -> None:
    """List the keys on the token with their protection attributes read back from it."""
    with reporting(KeyStoreError):
        keys = DataDir.from_env().open_keystore().list_keys()
    if as_json:
        print_json([k.as_dict() for k in keys])
        return
    table = Table(title=f"{len(keys)} key(s)")
    table.add_column("label", no_wrap=True)
    for col in ("type", "state", "sensitive", "extractable", "SPKI SHA-256"):
        table.add_column(col)
    for k in keys:
        table.add_row(k.label, k.spec, k.state, _yes(k.sensitive), _yes(k.extractable), k.spki_sha256[:16] + "…")
    out.print(table)


@app.command("keygen")
def keygen(
    document_type: str = typer.Option(..., "--doc", help="Document type or purpose, e.g. passport, idcard."),
    role: str = typer.Option(..., "--role", help="Role, e.g. csca, ds, cvca, dvca, is."),
    key_type: str = typer.Option("brainpoolP256r1", "--type", help=f"One of: {', '.join(KEY_SPECS)}."),
    label: str = typer.Option(None, "--label", help="Explicit label (default: the next free <doc>-<role>-NNNNN)."),
    as_json: bool = JsonOption,
) -> None:
    """Generate a sensitive, non-extractable, sign-only key pair on the token."""
    with reporting(KeyStoreError):
        store = DataDir.from_env().open_keystore()
        chosen = KeyLabel.parse(label) if label else store.next_label(document_type, role)
        store.generate_key(chosen, key_type, reason="icao-pki hsm keygen")
        info = store.key_info(chosen)
    if as_json:
        print_json(info.as_dict())
    else:
        out.print(f"generated {info.label} ({info.spec}) — sensitive={info.sensitive}, extractable={info.extractable}")


def _yes(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")
