"""PostfixAdmin's documented Postfix map files (POSTFIX_CONF.txt, mysql_virtual_*.cf) work as
mysql: tables unchanged, over the PostfixAdmin schema created and seeded by db/ on MariaDB."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pymailsrv.db import schema
from pymailsrv.policy.tables import close_table, open_table

CF = {
    "virtual_alias_maps": "SELECT goto FROM alias WHERE address='%s' AND active = '1'",
    "virtual_alias_domain_maps": "SELECT goto FROM alias,alias_domain WHERE alias_domain.alias_domain = '%d' "
                                 "and alias.address = CONCAT('%u', '@', alias_domain.target_domain) "
                                 "AND alias.active = 1 AND alias_domain.active='1'",
    "virtual_alias_domain_catchall_maps": "SELECT goto FROM alias,alias_domain WHERE "
                                          "alias_domain.alias_domain = '%d' and alias.address = "
                                          "CONCAT('@', alias_domain.target_domain) AND alias.active = 1 "
                                          "AND alias_domain.active='1'",
    "virtual_domains_maps": "SELECT domain FROM domain WHERE domain='%s' AND active = '1'",
    "virtual_mailbox_maps": "SELECT maildir FROM mailbox WHERE username='%s' AND active = '1'",
    "virtual_alias_domain_mailbox_maps": "SELECT maildir FROM mailbox,alias_domain WHERE "
                                         "alias_domain.alias_domain = '%d' and mailbox.username = "
                                         "CONCAT('%u', '@', alias_domain.target_domain) AND mailbox.active = 1 "
                                         "AND alias_domain.active='1'",
    "sender_login_maps": "SELECT goto FROM alias WHERE address='%s' AND active = '1' "
                         "UNION SELECT username FROM mailbox WHERE username='%s' AND active = '1'",
}
ROWS = {
    "domain": [{"domain": "example.com"}, {"domain": "example.net"}, {"domain": "off.example", "active": False}],
    "mailbox": [{"username": "alice@example.com"}, {"username": "bob@example.com", "active": False}],
    "alias": [{"address": "alice@example.com", "goto": "alice@example.com"},
              {"address": "info@example.com", "goto": "alice@example.com,carol@elsewhere.example"},
              {"address": "@example.com", "goto": "alice@example.com"}],
    "alias_domain": [{"alias_domain": "example.net", "target_domain": "example.com"}],
}


@pytest.mark.mariadb
async def test_postfixadmin_map_files(mariadb_url: str, tmp_path: Path) -> None:
    await schema.create_schema(mariadb_url)
    await schema.seed(mariadb_url, ROWS)
    m = re.match(r"mysql\+aiomysql://(\w+)@([\d.]+):(\d+)/(\w+)", mariadb_url)
    assert m
    user, host, port, name = m.groups()
    tables = {}
    for map_name, query in CF.items():
        path = tmp_path / f"mysql_{map_name}.cf"
        path.write_text(f"# {map_name}\nuser = {user}\npassword =\nhosts = {host}:{port}\ndbname = {name}\n"
                        f"query = {query}\n")
        tables[map_name] = open_table(f"proxy:mysql:{path}")
    try:
        async def q(map_name: str, key: str) -> str | None:
            return await tables[map_name].get(key)

        assert await q("virtual_domains_maps", "Example.COM") == "example.com"
        assert await q("virtual_domains_maps", "off.example") is None
        assert await q("virtual_alias_maps", "info@example.com") == "alice@example.com,carol@elsewhere.example"
        assert await q("virtual_alias_maps", "@example.com") == "alice@example.com"
        assert await q("virtual_alias_domain_maps", "info@example.net") == \
            "alice@example.com,carol@elsewhere.example"
        assert await q("virtual_alias_domain_maps", "@example.net") is None  # %u empty: no query
        assert await q("virtual_alias_domain_catchall_maps", "anyone@example.net") == "alice@example.com"
        assert await q("virtual_mailbox_maps", "alice@example.com") == "example.com/alice/"
        assert await q("virtual_mailbox_maps", "bob@example.com") is None  # inactive
        assert await q("virtual_alias_domain_mailbox_maps", "alice@example.net") == "example.com/alice/"
        assert await q("sender_login_maps", "alice@example.com") == "alice@example.com"
        assert await q("sender_login_maps", "x' OR '1'='1") is None
    finally:
        for table in tables.values():
            await close_table(table)
