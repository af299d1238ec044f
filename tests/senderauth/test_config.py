"""Start-up refuses a sender authentication configuration that cannot work, naming the parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pymailsrv.errors import ConfigError
from pymailsrv.pipeline.senderauth import dkim_sign_stage, sender_auth_stage


@pytest.mark.parametrize(("params", "error"), [
    ({"dkim_key_table": "KT"}, "dkim_key_table and dkim_signing_table: set both or neither"),
    ({"dkim_key_table": "missing", "dkim_signing_table": "ST"}, "dkim_key_table: cannot read .*missing: No such file"),
    ({"dkim_key_table": "KT", "dkim_signing_table": "ST", "bad_key": "yes"}, "not a PEM key"),
])
def test_dkim_tables(settings_factory: Any, tmp_path: Path, params: dict[str, str], error: str) -> None:
    key = tmp_path / "k.private"
    key.write_text("garbage" if params.pop("bad_key", "") else "")
    (tmp_path / "KT").write_text(f"k example.com:s:{key}\n")
    (tmp_path / "ST").write_text("*@example.com k\n")
    values = {name: str(tmp_path / value) for name, value in params.items()}
    with pytest.raises(ConfigError, match=error):
        dkim_sign_stage(settings_factory(**values))


def test_unknown_sender_auth_restriction(settings_factory: Any) -> None:
    with pytest.raises(ConfigError, match='sender_auth_restrictions: unknown "reject_everything"'):
        sender_auth_stage(settings_factory(sender_auth_restrictions="reject_everything"))


def test_no_tables_no_signing_stage_events(settings_factory: Any) -> None:
    assert dkim_sign_stage(settings_factory()).events == frozenset()
