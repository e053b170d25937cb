"""icao-pki: ICAO 9303 passive-authentication PKI and the policy of Decree 68/2024/NĐ-CP."""

__version__ = "0.1.0"
