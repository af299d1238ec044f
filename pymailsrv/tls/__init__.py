"""The certificates every TLS listener serves: the default one (the ACME certificate once issued,
else tls_cert_file), one per name by SNI (tls_server_sni_maps), and what they say about
themselves (names, issuer, expiry)."""
