"""`icao-pki serve`: run the lifecycle API on the embedded default or a configured deployment."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import typer

from .clock import SystemClock
from .console import err, reporting
from .embedded import DataDir, init_embedded_token
from .keystore import KeyStoreError
from .policy import PolicyError, policy_from_env


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    check: bool = typer.Option(False, "--check", help="Prepare everything, print the status, and exit without serving."),
    demo: bool = typer.Option(
        False,
        "--demo",
        help="Bootstrap the demo deployment (parties, organisation PKI, CSCAs, CVCA, DVCA) if the database has none; "
        "operator tokens go to <data folder>/demo-credentials.json.",
    ),
) -> None:
    """Open the key store, migrate the database, and serve the lifecycle API (uvicorn)."""
    import uvicorn

    from lifecycle_api.app import create_app
    from lifecycle_api.settings import Settings
    from lifecycle_api.store import Store
    from lifecycle_api.store.migrate import upgrade
    from schedules.runtime import schedule_runner

    with reporting(KeyStoreError, PolicyError):
        policy = policy_from_env()  # a configuration that loosens the decree is refused before anything starts
        configured = Settings.from_environment()  # so is a malformed ICAO_PKI_* setting (one line naming it)
        data_dir = DataDir.from_env()
        data_dir.root.mkdir(parents=True, exist_ok=True)
        if data_dir.uses_embedded_hsm():
            init_embedded_token(data_dir)
        keystore = data_dir.open_keystore()  # a wrong PIN or module fails here, before listening
        upgrade(data_dir.database_url)
        settings = replace(configured, database_url=data_dir.database_url, policy=policy)
        store = Store(data_dir.database_url)
        if demo:
            from fixtures.demo import bootstrap_demo, demo_settings

            deployment = bootstrap_demo(store, keystore, SystemClock(), data_dir=data_dir.root, settings=settings)
            settings = demo_settings(settings, deployment)  # trust the demo CA; the Provider auto-acts on DS/IS
        app = create_app(settings, keyring=keystore, store=store)
        schedule_options: dict[str, object] = {}
        if demo:
            from fixtures.demo import demo_schedule_options

            schedule_options = demo_schedule_options(store, keystore, data_dir.root)
        runner = schedule_runner(app.state.services, keystore, **schedule_options)
        # The leader-locked scheduler runs while the API serves (rollovers, renewals, CRLs, expiry).
        app.router.on_startup.append(runner.start)
        app.router.on_shutdown.append(runner.stop)
    keys = keystore.list_keys()  # after a demo bootstrap, too
    active = sum(1 for k in keys if k.state == "active")
    err.print(
        f"icao-pki: token {keystore.config.token_label!r} ({active} active key(s)), "
        f"database {data_dir.database_url}, data folder {data_dir.root}",
        markup=False,
        highlight=False,
    )
    actors = "as the demo Provider and Agencies" if schedule_options else "in notice mode (no service accounts configured)"
    err.print(f"icao-pki: schedules run on the leader instance {actors}", markup=False)
    # what the unused-key job was given, so an operator sees that ICAO_PKI_UNUSED_KEY_MAX_AGE took
    unused_days = runner.ctx.unused_key_max_age / timedelta(days=1)
    err.print(f"icao-pki: generated keys left uncertified {unused_days:g} day(s) are destroyed "
              "(ICAO_PKI_UNUSED_KEY_MAX_AGE)", markup=False)
    if demo:
        err.print(f"icao-pki: demo operator tokens in {data_dir.root / 'demo-credentials.json'}", markup=False)
    if check:
        return
    err.print(f"icao-pki: serving the lifecycle API on http://{host}:{port} (OpenAPI at /docs)", markup=False)
    uvicorn.run(app, host=host, port=port, log_level="info")
