"""DNS advice: what the world sees of this host and of each hosted domain, against what it
should publish, with the records to add (zone-file lines).

- this host: $myhostname has address records, and each address a PTR naming it back
  (forward-confirmed reverse DNS, which receivers check: Postfix's reject_unknown_client_hostname);
- each domain: an MX that reaches this host (RFC 5321 §5.1), one SPF record that passes this
  host's addresses (RFC 7208), the DKIM key of every selector it signs with (RFC 6376 §3.6.1,
  only when this pymailsrv signs), one DMARC record with a policy (RFC 7489 §6.3);
- alias domains receive mail only: their MX.
"""

from __future__ import annotations

import ipaddress

import dns.reversename

from pymailsrv.config.settings import Settings
from pymailsrv.doctor.checks_database import Domains
from pymailsrv.doctor.dkim_keys import (
    dkim_parameters,
    key_table_spec,
    keys_for,
    public_record,
    read_key_table,
    tag,
    zone_strings,
)
from pymailsrv.doctor.report import Report
from pymailsrv.doctor.spf import Address, SpfView, spf_records, with_host
from pymailsrv.policy.dns import Resolver, Status

TTL = 3600


def _rr(name: str, rdtype: str, value: str) -> str:
    return f"{name.rstrip('.')}. {TTL} IN {rdtype} {value}"


class DnsChecks:
    def __init__(self, settings: Settings, report: Report, resolver: Resolver) -> None:
        self.settings = settings
        self.report = report
        self.resolver = resolver
        self.host = settings.get_str("myhostname").lower().rstrip(".")
        self.addresses: set[Address] = set()

    async def run(self, domains: Domains) -> None:
        self.report.section(f"DNS of this host ({self.host})")
        await self.check_host()
        if not dkim_parameters():
            self.report.info("DKIM", "not checked: this pymailsrv has no DKIM signing (no dkim_* parameters)")
        elif not key_table_spec(self.settings):
            self.report.info("DKIM", "not checked: no key table (dkim_key_table is empty)")
        for domain in domains.hosted:
            self.report.section(f"DNS of {domain}")
            mx_is_us = await self.check_mx(domain)
            await self.check_spf(domain, mx_is_us)
            await self.check_dkim(domain)
            await self.check_dmarc(domain)
        for domain in domains.alias:
            self.report.section(f"DNS of {domain} (alias domain)")
            await self.check_mx(domain)
        for domain in domains.backup_mx:
            self.report.section(f"DNS of {domain} (backup MX)")
            await self.check_mx(domain)

    async def _query(self, subject: str, name: str, rdtype: str) -> list[str] | None:
        """The records, [] for none; None (and a warning) when the lookup failed."""
        status, values = await self.resolver.query(name, rdtype)
        if status is Status.TEMPFAIL:
            self.report.warning(subject, f"the lookup of {name} {rdtype} failed (timeout or SERVFAIL)")
            return None
        return values

    async def _addresses(self, subject: str, name: str) -> set[Address] | None:
        found: set[Address] = set()
        for rdtype in ("A", "AAAA"):
            values = await self._query(subject, name, rdtype)
            if values is None:
                return None
            found.update(ipaddress.ip_address(v) for v in values)
        return found

    # --- this host ----------------------------------------------------------------------------
    async def check_host(self) -> None:
        if "." not in self.host:
            self.report.error("myhostname", f'"{self.host}" is not a fully-qualified name: other servers '
                              "reject it in HELO and cannot look it up", ["myhostname = mail.example.com"])
            return
        subject = f"{self.host} A/AAAA"
        found = await self._addresses(subject, self.host)
        if found is None:
            return
        if not found:
            self.report.error(subject, "no address record: other servers cannot reach this host by name",
                              [_rr(self.host, "A", "<this server's public IPv4 address>"),
                               _rr(self.host, "AAAA", "<its IPv6 address, if it has one>")])
            return
        self.addresses = found
        loopback = [str(a) for a in found if a.is_loopback]
        if loopback:
            self.report.warning(subject, f"resolves to {', '.join(loopback)}: no other host can reach it")
        else:
            self.report.ok(subject, ", ".join(sorted(map(str, found))))
        for address in sorted(found, key=str):
            await self.check_ptr(address)

    async def check_ptr(self, address: Address) -> None:
        reverse = dns.reversename.from_address(str(address)).to_text()
        subject = f"PTR of {address}"
        names = await self._query(subject, reverse, "PTR")
        if names is None:
            return
        add = [_rr(reverse, "PTR", f"{self.host}.") + "   (set by whoever owns the address: the hosting provider)"]
        names = [n.lower().rstrip(".") for n in names]
        if not names:
            self.report.error(subject, "none: many receivers refuse mail from an address without reverse DNS", add)
        elif self.host in names:
            self.report.ok(subject, f"{self.host} (forward-confirmed)")
        else:
            back = await self._addresses(subject, names[0])
            if back is not None and address in back:
                self.report.warning(subject, f"names {names[0]}, not {self.host} (the name this host "
                                    "gives in HELO); forward-confirmed, so accepted, but they should agree", add)
            elif back is not None:
                self.report.error(subject, f"names {names[0]}, which does not resolve back to {address}", add)

    # --- each domain --------------------------------------------------------------------------
    async def check_mx(self, domain: str) -> bool:
        """True when the domain's MX reaches this host."""
        subject = f"{domain} MX"
        add = [_rr(domain, "MX", f"10 {self.host}.")]
        values = await self._query(subject, domain, "MX")
        if values is None:
            return False
        exchanges = sorted((int(v.split()[0]), v.split()[-1].lower().rstrip(".")) for v in values)
        if not exchanges:
            implicit = await self._addresses(subject, domain)
            if implicit and implicit & self.addresses:
                self.report.warning(subject, "none; mail goes to the domain's own address, this host "
                                    "(RFC 5321 §5.1 implicit MX): publish an MX", add)
            else:
                self.report.error(subject, "none: other servers do not know where to deliver its mail", add)
            return False
        if exchanges == [(0, "")]:
            self.report.error(subject, "null MX (RFC 7505): the domain says it accepts no mail", add)
            return False
        listed = ", ".join(f"{p} {h}" for p, h in exchanges)
        for _, exchange in exchanges:
            if exchange == self.host:
                self.report.ok(subject, listed)
                return True
            reached = await self._addresses(subject, exchange)
            if reached and reached & self.addresses:
                self.report.ok(subject, f"{listed} ({exchange} is this host's address)")
                return True
        self.report.warning(subject, f"{listed}: not this host; right only if those relay to it", add)
        return False

    async def check_spf(self, domain: str, mx_is_us: bool) -> None:
        subject = f"{domain} SPF"
        values = await self._query(subject, domain, "TXT")
        if values is None:
            return
        records = spf_records(values)
        suggested = "v=spf1 mx -all" if mx_is_us else f"v=spf1 a:{self.host} -all"
        if not records:
            self.report.warning(subject, "none: receivers cannot tell forged mail from this domain's",
                                [_rr(domain, "TXT", zone_strings(suggested))])
            return
        if len(records) > 1:
            self.report.error(subject, f"{len(records)} SPF records: receivers treat that as an error "
                              "(RFC 7208 §4.5); merge them into one", [_rr(domain, "TXT", zone_strings(suggested))])
            return
        record = records[0]
        if any(t.lower() in ("all", "+all") for t in record.split()):
            self.report.warning(subject, f'"{record}": +all lets every host on the Internet send as {domain}')
            return
        if not self.addresses:
            self.report.info(subject, f'"{record}" (not evaluated: this host has no address)')
            return
        view = SpfView(self.resolver)
        for address in sorted(self.addresses, key=str):
            result, why = await view.evaluate(domain, address)
            fix = [_rr(domain, "TXT", zone_strings(with_host(record, self.host)))]
            if result == "pass":
                self.report.ok(subject, f'"{record}": {address} passes ({why})')
            elif result is None:
                self.report.info(subject, f'"{record}": cannot tell whether {address} passes ({why})')
            elif result == "fail":
                self.report.error(subject, f'"{record}": {address} fails; receivers reject this host\'s mail', fix)
            else:
                self.report.warning(subject, f'"{record}": {address} gets {result}, not pass ({why})', fix)

    async def check_dkim(self, domain: str) -> None:
        spec = key_table_spec(self.settings)
        if not spec:
            return
        subject = f"{domain} DKIM"
        try:
            keys = keys_for(read_key_table(spec), domain)
        except (OSError, ValueError) as exc:
            self.report.error(subject, f"cannot read the key table: {exc}")
            return
        if not keys:
            self.report.warning(subject, f"no key for {domain} in {spec}: its mail goes unsigned",
                                [f"pymailsrv dkim keygen {domain}"])
        for key in keys:
            await self.check_dkim_key(domain, key.selector, key.key_file)

    async def check_dkim_key(self, domain: str, selector: str, key_file: str) -> None:
        name = f"{selector}._domainkey.{domain}"
        subject = f"{domain} DKIM {selector}"
        try:
            wanted = public_record(key_file)
        except (OSError, ValueError) as exc:
            self.report.error(subject, f"cannot read the key {key_file}: {exc}")
            return
        add = [_rr(name, "TXT", zone_strings(wanted))]
        values = await self._query(subject, name, "TXT")
        if values is None:
            return
        published = [v for v in values if tag(v, "p") is not None]
        if not published:
            self.report.error(subject, f"no key at {name}: receivers cannot verify the signatures", add)
        elif any(tag(v, "p") == tag(wanted, "p") for v in published):
            self.report.ok(subject, f"{name} publishes the signing key")
        else:
            self.report.error(subject, f"{name} publishes another key than {key_file}: signatures fail", add)

    async def check_dmarc(self, domain: str) -> None:
        name = f"_dmarc.{domain}"
        subject = f"{domain} DMARC"
        suggested = f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}"
        add = [_rr(name, "TXT", zone_strings(suggested)),
               "(p=none reports only; raise it to quarantine, then reject, once the reports show "
               "all of the domain's mail passing)"]
        values = await self._query(subject, name, "TXT")
        if values is None:
            return
        records = [v for v in values if v.replace(" ", "").lower().startswith("v=dmarc1")]
        if not records:
            self.report.warning(subject, f"none at {name}: receivers apply no policy to mail forged "
                                "in this domain's name", add)
        elif len(records) > 1:
            self.report.error(subject, f"{len(records)} records at {name}: receivers ignore them all "
                              "(RFC 7489 §6.6.3)", add)
        else:
            policy = (tag(records[0], "p") or "").lower()
            if policy not in ("none", "quarantine", "reject"):
                self.report.error(subject, f'"{records[0]}": no valid p= tag; receivers ignore it', add)
            elif policy == "none":
                self.report.ok(subject, f'"{records[0]}" (p=none: reports only)')
            else:
                self.report.ok(subject, f'"{records[0]}"')
