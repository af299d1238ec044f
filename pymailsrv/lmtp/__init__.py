"""LMTP (RFC 2033) server: Postfix's ``virtual_transport = lmtp:…`` delivers into our Maildirs."""
