"""HTTPS for a gateway: the manifest's `tls:` section checked at load, and the
client context the gateway's own probes use.

Probes go to the address a service listens on from this machine (127.0.0.1
for a service bound to 0.0.0.0), while the certificate names the plant's
host name, so a probe cannot check the host name. It checks the certificate
instead: the manifest's own certificate is the only trust anchor, so what
answers must hold its private key (or, for a CA certificate, a certificate
that key signed). The ML services' feedback uses an ordinary client that
does check the host name, so the training service's address must be one the
certificate names; load_manifest says so when it is not.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrm.errors import DataError

if TYPE_CHECKING:
    from mlrm.config.yamldoc import Report


def probe_context(certfile: str | Path) -> ssl.SSLContext:
    """A client context trusting only certfile, without the host-name check (why: this module's docstring)."""
    context = ssl.create_default_context(cafile=str(certfile))
    context.check_hostname = False  # before verify_mode: the certificate itself is still verified
    context.verify_mode = ssl.CERT_REQUIRED
    # A leaf issued by the plant's CA is a trust anchor on its own, as the manifest names no CA file.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def certificate_names(certfile: Path) -> tuple[set[str], set[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """(DNS names, IP addresses) of the first certificate in certfile's subjectAltName."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    dns = {name.lower() for name in alt.get_values_for_type(x509.DNSName)}
    ips = alt.get_values_for_type(x509.IPAddress)
    return dns, {ip for ip in ips if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))}


def names_host(certfile: Path, host: str) -> bool:
    """Whether a client that checks host names accepts certfile for host (RFC 6125: one leading * label)."""
    dns, ips = certificate_names(certfile)
    try:
        return ipaddress.ip_address(host) in ips
    except ValueError:
        pass
    host = host.lower()
    wildcard = "*." + host.split(".", 1)[1] if "." in host else None
    return host in dns or (wildcard is not None and wildcard in dns)


def check_section(section: dict[str, Any], root: Path, report: Report) -> tuple[Path, Path] | None:
    """The resolved (certfile, keyfile) of a manifest's tls section; problems go to report."""
    given = {key: section.get(key) for key in ("certfile", "keyfile")}
    missing = [key for key, value in given.items() if not value]
    if missing:
        other = "certfile" if missing == ["keyfile"] else "keyfile"
        report(
            ("tls", missing[0]),
            f"tls needs both certfile and keyfile; {missing[0]} is missing. Fix: add {missing[0]}: PATH (a PEM "
            f"file, relative to root) beside {other}, or remove the tls section for plain HTTP.",
        )
        return None
    paths = {key: Path(os.path.normpath(root / os.path.expanduser(str(value)))) for key, value in given.items()}
    for key, path in paths.items():
        if not path.is_file():
            report(
                ("tls", key),
                f"{path}: no such file. Fix: give the path of a PEM file that exists, relative to root ({root}).",
            )
    if any(not path.is_file() for path in paths.values()):
        return None
    # Here, not at the top: mlrm.rest brings Flask and gunicorn, which `mlrm status` and the supervisor never need.
    from mlrm.rest.server import check_tls

    try:
        check_tls(str(paths["certfile"]), str(paths["keyfile"]), where="tls")
    except DataError as exc:
        report(("tls", "keyfile"), str(exc).removeprefix("tls: ") + ".")
        return None
    return paths["certfile"], paths["keyfile"]


def check_feedback_host(certfile: Path, host: str, report: Report) -> None:
    """Report when the ML services' feedback could not verify the training service at host."""
    if names_host(certfile, host):
        return
    dns, ips = certificate_names(certfile)
    named = ", ".join(sorted(dns) + sorted(str(ip) for ip in ips)) or "no subjectAltName"
    report(
        ("tls", "certfile"),
        f"the certificate names {named}, not {host}, where the ML services send feedback to the training "
        f"service (a client that checks host names). Fix: add {'IP' if _is_ip(host) else 'DNS'}:{host} to "
        "the certificate's subjectAltName, or set host to a name the certificate holds.",
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
