"""BSI TR-03110 card-verifiable certificates: a pure codec that signs through a Signer.

Modules, after the spec objects they handle:

* `tlv` — the strict BER-TLV dialect (1–2-byte tags, ≤ 3 length octets, ≤ 65,535 bytes);
* `oid`, `algorithms` — object identifiers, id-TA-* algorithms (`TaAlgorithm`);
* `reference` — CHR/CAR (`HolderReference`); `chat` — CHAT roles and rights (`Chat`);
* `publickey` — 7F49 keys with the domain-parameter presence rules;
* `certificate` — `CvCertificate`, `CvRequest`, `AuthenticatedRequest`, `parse_cv`, encoders;
* `builders` — `build_cvca_certificate`, `build_cvca_link_certificate`, `build_dv_certificate`,
  `build_terminal_certificate`, `build_request`, `build_authenticated_request` (all return DER);
* `validation` — chip-side `verify_chain_as_chip` / `ChipState`, issuer-side `check_chain_at` /
  `verify_chain_at`, `verify_request`; `ta` — Terminal Authentication `ta_sign` / `ta_verify`;
* `describe` — the `cvc show --json` shape; `cli` — `icao-pki cvc show|verify`;
* `errors` — `CvcError` and its typed children.

No database, no HSM session, no clock: keys arrive as `icao_pki.signer.Signer`, dates as
parameters.
"""
