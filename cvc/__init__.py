"""BSI TR-03110 card-verifiable certificates: a pure codec that signs through a Signer."""
