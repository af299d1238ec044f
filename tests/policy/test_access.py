"""Access-map key expansion and action parsing (POSTFIX-SEMANTICS §4), pure functions."""

from __future__ import annotations

from pymailsrv.policy.access import Action, address_keys, client_keys, domain_keys, ip_keys, parse_action


def test_address_keys_order() -> None:
    assert address_keys("User@Sub.Example.COM") == [
        "User@sub.example.com", "sub.example.com", "example.com", ".example.com", "com", ".com", "User@",
    ]
    # parent_domain_matches_subdomains without smtpd_access_maps: .parent keys instead
    assert address_keys("u@a.example.com", parent_style=False) == [
        "u@a.example.com", "a.example.com", ".example.com", ".com", "u@",
    ]


def test_address_keys_with_extension_first() -> None:
    assert address_keys("user+tag@example.com", delimiter="+") == [
        "user+tag@example.com", "user@example.com", "example.com", "com", ".com", "user+tag@", "user@",
    ]
    # several delimiter characters, the first found splits
    assert address_keys("user-a+b@x.org", delimiter="+-")[:2] == ["user-a+b@x.org", "user@x.org"]
    # without a delimiter setting the + is part of the name
    assert address_keys("user+tag@x.org")[0] == "user+tag@x.org"
    assert "user@x.org" not in address_keys("user+tag@x.org")


def test_null_sender_and_bare_names() -> None:
    assert address_keys("") == ["<>"]
    assert address_keys("", null_key="<null>") == ["<null>"]
    assert address_keys("postmaster") == ["postmaster@"]


def test_domain_keys() -> None:
    assert domain_keys("a.b.example.") == ["a.b.example", "b.example", ".b.example", "example", ".example"]
    assert domain_keys("a.b.example", parent_style=False) == ["a.b.example", ".b.example", ".example"]
    assert domain_keys("[1.2.3.4]") == ["[1.2.3.4]"]
    assert domain_keys("") == []


def test_ip_keys_v4_v6_and_mapped() -> None:
    assert ip_keys("192.168.3.87") == ["192.168.3.87", "192.168.3", "192.168", "192"]
    assert ip_keys("2001:DB8:0:0:1::5") == ["2001:db8::1:0:0:5", "2001:db8::1:0:0", "2001:db8::1:0",
                                            "2001:db8::1", "2001:db8:", "2001:db8", "2001"]
    assert ip_keys("::ffff:10.1.2.3") == ["10.1.2.3", "10.1.2", "10.1", "10"]
    assert ip_keys("[10.0.0.1]")[0] == "10.0.0.1"


def test_client_keys() -> None:
    assert client_keys("mail.example.org", "10.0.0.1") == [
        "mail.example.org", "example.org", ".example.org", "org", ".org", "10.0.0.1", "10.0.0", "10.0", "10",
    ]
    assert client_keys("unknown", "10.0.0.1") == ["10.0.0.1", "10.0.0", "10.0", "10"]


def test_parse_action() -> None:
    assert parse_action("OK") == Action("OK")
    assert parse_action("ok") == Action("OK")
    assert parse_action("12345") == Action("OK", "12345")
    assert parse_action("REJECT") == Action("REJECT")
    assert parse_action("reject\tgo away  now") == Action("REJECT", "go away  now")
    assert parse_action("450 4.7.0 try later") == Action("CODE", "try later", 450, "4.7.0")
    assert parse_action("550 no way") == Action("CODE", "no way", 550, "")
    assert parse_action("DEFER_IF_PERMIT Greylisted") == Action("DEFER_IF_PERMIT", "Greylisted")
    assert parse_action("PREPEND X-Tag: yes") == Action("PREPEND", "X-Tag: yes")
    assert parse_action("") == Action("DUNNO")
    assert parse_action("reject_unknown_sender_domain, permit") == \
        Action("RESTRICTION", "reject_unknown_sender_domain, permit")
