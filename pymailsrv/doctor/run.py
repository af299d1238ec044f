"""The order of the checks and the summary line."""

from __future__ import annotations

from typing import TextIO

from pymailsrv.config.settings import Settings
from pymailsrv.doctor.checks_service import check_service
from pymailsrv.doctor.report import Report

DNS_TIMEOUT = 5.0


async def run(settings: Settings, out: TextIO, *, quick: bool = False, dns: bool = True,
              config_path: str = "") -> int:
    """Exit status: 1 when any check found an error. ``quick``: only whether the server serves
    (control socket, listeners); ``dns``: False skips the DNS advice."""
    report = Report(out=out)
    if quick:
        await check_service(settings, report, quick=True)
        print(f"pymailsrv doctor --quick: {report.summary()}", file=out)
        return report.status()
    # the rest imports the database layer, dnspython and cryptography: not for --quick
    from pymailsrv.doctor.checks_certs import check_certificates
    from pymailsrv.doctor.checks_database import check_database
    from pymailsrv.doctor.checks_dns import DnsChecks
    from pymailsrv.doctor.checks_files import check_files
    from pymailsrv.policy.dns import Resolver

    report.section(f"Configuration{f' ({config_path})' if config_path else ''}")
    report.ok("configuration", "parsed without errors")
    report.section("Files and permissions")
    check_files(settings, report)
    report.section("Certificates")
    check_certificates(settings, report)
    report.section("Database")
    domains = await check_database(settings, report)
    report.section("Service")
    await check_service(settings, report, quick=False)
    if dns:
        resolver = Resolver(settings.get_list("dns_nameservers"), timeout=DNS_TIMEOUT)
        await DnsChecks(settings, report, resolver).run(domains)
    print(f"\npymailsrv doctor: {report.summary()}", file=out)
    return report.status()
