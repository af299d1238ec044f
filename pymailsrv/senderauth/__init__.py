"""Native sender authentication: DKIM signing and verification, SPF, DMARC, ARC and the
Authentication-Results header (docs/senderauth.md). Pure evaluators over an injected DNS lookup
(``dnslookup.Lookup``); the pipeline stages that use them live in pipeline/senderauth.py."""
