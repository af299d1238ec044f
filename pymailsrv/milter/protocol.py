"""The Sendmail milter protocol, MTA side, as bytes: packets to send and the milter's replies
(libmilter's mfdef.h; Postfix's milter8.c speaks the same, version 6 with option negotiation).

Implementation notes
- Pure: no I/O. A packet is a 4-byte big-endian length (the command byte included), the command
  byte and its data; strings are NUL-terminated.
- ``PacketReader.feed`` is incremental: any split of the byte stream gives the same packets, and
  a length beyond ``MAX_PACKET`` is a ProtocolError before anything is buffered.
- Replies are decoded into ``Reply`` values; the caller decides what each means at its event.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# --- commands, MTA to milter (mfdef.h SMFIC_*) ------------------------------------------------------
ABORT = b"A"
BODY = b"B"
CONNECT = b"C"
MACRO = b"D"
BODYEOB = b"E"
HELO = b"H"
QUIT_NC = b"K"
HEADER = b"L"
MAIL = b"M"
EOH = b"N"
OPTNEG = b"O"
QUIT = b"Q"
RCPT = b"R"
DATA = b"T"
UNKNOWN = b"U"

COMMAND_NAMES = {ABORT: "SMFIC_ABORT", BODY: "SMFIC_BODY", CONNECT: "SMFIC_CONNECT", MACRO: "SMFIC_MACRO",
                 BODYEOB: "SMFIC_BODYEOB", HELO: "SMFIC_HELO", HEADER: "SMFIC_HEADER", MAIL: "SMFIC_MAIL",
                 EOH: "SMFIC_EOH", OPTNEG: "SMFIC_OPTNEG", QUIT: "SMFIC_QUIT", RCPT: "SMFIC_RCPT",
                 DATA: "SMFIC_DATA", UNKNOWN: "SMFIC_UNKNOWN"}

# --- replies, milter to MTA (SMFIR_*) -----------------------------------------------------------------
R_ADDRCPT = b"+"
R_DELRCPT = b"-"
R_ADDRCPT_PAR = b"2"
R_SHUTDOWN = b"4"
R_ACCEPT = b"a"
R_REPLBODY = b"b"
R_CONTINUE = b"c"
R_DISCARD = b"d"
R_CHGFROM = b"e"
R_CONN_FAIL = b"f"
R_ADDHEADER = b"h"
R_INSHEADER = b"i"
R_SETSYMLIST = b"l"
R_CHGHEADER = b"m"
R_PROGRESS = b"p"
R_QUARANTINE = b"q"
R_REJECT = b"r"
R_SKIP = b"s"
R_TEMPFAIL = b"t"
R_REPLYCODE = b"y"
R_OPTNEG = b"O"

# replies that end the wait for one command; modifications and progress come before one of them
FINAL_REPLIES = frozenset({R_ACCEPT, R_CONTINUE, R_DISCARD, R_REJECT, R_TEMPFAIL, R_REPLYCODE, R_SKIP,
                           R_CONN_FAIL, R_SHUTDOWN})
MODIFICATIONS = frozenset({R_ADDRCPT, R_DELRCPT, R_ADDRCPT_PAR, R_REPLBODY, R_CHGFROM, R_ADDHEADER,
                           R_INSHEADER, R_CHGHEADER, R_QUARANTINE})

# --- actions the milter may take at the end of the message (SMFIF_*) --------------------------------
F_ADDHDRS = 0x01
F_CHGBODY = 0x02
F_ADDRCPT = 0x04
F_DELRCPT = 0x08
F_CHGHDRS = 0x10
F_QUARANTINE = 0x20
F_CHGFROM = 0x40
F_ADDRCPT_PAR = 0x80
F_SETSYMLIST = 0x100
ACTIONS_V2 = 0x3F
ACTIONS_V6 = 0x1FF

# the action each modification needs
ACTION_OF = {R_ADDHEADER: F_ADDHDRS, R_INSHEADER: F_ADDHDRS, R_CHGHEADER: F_CHGHDRS, R_REPLBODY: F_CHGBODY,
             R_ADDRCPT: F_ADDRCPT, R_ADDRCPT_PAR: F_ADDRCPT_PAR, R_DELRCPT: F_DELRCPT,
             R_QUARANTINE: F_QUARANTINE, R_CHGFROM: F_CHGFROM}

# --- protocol steps (SMFIP_*): events the milter does not want, replies it will not send ------------
P_NOCONNECT = 0x01
P_NOHELO = 0x02
P_NOMAIL = 0x04
P_NORCPT = 0x08
P_NOBODY = 0x10
P_NOHDRS = 0x20
P_NOEOH = 0x40
P_NR_HDR = 0x80
P_NOUNKNOWN = 0x100
P_NODATA = 0x200
P_SKIP = 0x400
P_RCPT_REJ = 0x800
P_NR_CONN = 0x1000
P_NR_HELO = 0x2000
P_NR_MAIL = 0x4000
P_NR_RCPT = 0x8000
P_NR_DATA = 0x10000
P_NR_UNKN = 0x20000
P_NR_EOH = 0x40000
P_NR_BODY = 0x80000
P_HDR_LEADSPC = 0x100000

# What the MTA offers per protocol version (milter_protocol), as Postfix's milter8.c. P_RCPT_REJ
# is never offered: a recipient refused by an earlier stage never reaches the milter stage.
_STEPS_V2 = 0x7F
_STEPS_V4 = _STEPS_V2 | P_NR_HDR | P_NOUNKNOWN | P_NODATA
_STEPS_V6 = (_STEPS_V4 | P_SKIP | P_NR_CONN | P_NR_HELO | P_NR_MAIL | P_NR_RCPT | P_NR_DATA | P_NR_UNKN
             | P_NR_EOH | P_NR_BODY | P_HDR_LEADSPC)
STEPS_OFFERED = {2: _STEPS_V2, 3: _STEPS_V2 | P_NR_HDR, 4: _STEPS_V4, 5: _STEPS_V4, 6: _STEPS_V6}
ACTIONS_OFFERED = {2: ACTIONS_V2, 3: ACTIONS_V2, 4: ACTIONS_V2, 5: ACTIONS_V2, 6: ACTIONS_V6}

# macro stages of SMFIR_SETSYMLIST (SMFIM_*)
M_CONNECT, M_HELO, M_ENVFROM, M_ENVRCPT, M_DATA, M_EOM, M_EOH = range(7)

CHUNK = 65535  # MILTER_CHUNK_SIZE: the largest SMFIC_BODY the milter must accept
MAX_PACKET = 1 << 20  # the largest reply we accept (a replaced body comes in chunks)


class ProtocolError(Exception):
    """The milter broke the protocol: a bad length, a short packet, a reply not allowed here."""


def packet(command: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + command + data


def _cstr(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape").replace(b"\0", b"") + b"\0"


def optneg(version: int, actions: int, steps: int) -> bytes:
    return packet(OPTNEG, struct.pack("!III", version, actions, steps))


def macros(command: bytes, values: Iterable[tuple[str, str]]) -> bytes:
    """SMFIC_MACRO for ``command``: name/value pairs, names as Sendmail writes them (``j``,
    ``{daemon_name}``)."""
    return packet(MACRO, command + b"".join(_cstr(n) + _cstr(v) for n, v in values))


def connect(hostname: str, family: str, port: int, address: str) -> bytes:
    """``family``: "4", "6", "L" (unix socket, address = path) or "U" (unknown: no port or address)."""
    if family == "U":
        return packet(CONNECT, _cstr(hostname) + b"U")
    return packet(CONNECT, _cstr(hostname) + family.encode() + struct.pack("!H", port) + _cstr(address))


def helo(name: str) -> bytes:
    return packet(HELO, _cstr(name))


def mail(sender: str, args: Sequence[str] = ()) -> bytes:
    return packet(MAIL, _cstr(f"<{sender}>") + b"".join(_cstr(a) for a in args))


def rcpt(recipient: str, args: Sequence[str] = ()) -> bytes:
    return packet(RCPT, _cstr(f"<{recipient}>") + b"".join(_cstr(a) for a in args))


def header(name: str, value: str) -> bytes:
    return packet(HEADER, _cstr(name) + _cstr(value))


def body_chunks(body: bytes, size: int = CHUNK) -> list[bytes]:
    """SMFIC_BODY packets of at most ``size`` bytes of body each (none for an empty body)."""
    view = memoryview(body)
    return [packet(BODY, bytes(view[i:i + size])) for i in range(0, len(body), size)]


def simple(command: bytes) -> bytes:
    """A command without data: SMFIC_DATA, SMFIC_EOH, SMFIC_BODYEOB, SMFIC_ABORT, SMFIC_QUIT."""
    return packet(command)


class PacketReader:
    """Splits the milter's byte stream into (command, data) packets."""

    def __init__(self, limit: int = MAX_PACKET) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buf += data
        out: list[tuple[bytes, bytes]] = []
        while len(self._buf) >= 4:
            (length,) = struct.unpack_from("!I", self._buf)
            if length < 1 or length > self._limit:
                raise ProtocolError(f"bad packet length {length}")
            if len(self._buf) < 4 + length:
                break
            out.append((bytes(self._buf[4:5]), bytes(self._buf[5:4 + length])))
            del self._buf[:4 + length]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete packet."""
        return len(self._buf)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The milter's answer to SMFIC_OPTNEG: its version, the actions it may take, the protocol
    steps it leaves out or does not answer, and the macros it asks for per stage (SMFIM_*)."""

    version: int
    actions: int
    steps: int
    macros: dict[int, tuple[str, ...]]


def parse_optneg(data: bytes, offered_actions: int, offered_steps: int) -> Negotiated:
    if len(data) < 12:
        raise ProtocolError("short SMFIC_OPTNEG reply")
    version, actions, steps = struct.unpack_from("!III", data)
    if version < 2:
        raise ProtocolError(f"milter protocol version {version} is not supported")
    if actions & ~offered_actions:
        raise ProtocolError(f"milter asks for actions 0x{actions:x}, offered 0x{offered_actions:x}")
    if steps & ~offered_steps & ~(0xF0000000):  # the MDS_* size bits are requests we ignore
        raise ProtocolError(f"milter asks for protocol steps 0x{steps:x}, offered 0x{offered_steps:x}")
    wanted: dict[int, tuple[str, ...]] = {}
    rest = data[12:]
    while len(rest) >= 4:  # SMFIR_SETSYMLIST in the reply: (stage, "name name ...\0") pairs
        (where,) = struct.unpack_from("!I", rest)
        text, _, rest = rest[4:].partition(b"\0")
        wanted[where] = tuple(text.decode("utf-8", "replace").split())
    return Negotiated(version, actions, steps, wanted)


def split_cstrings(data: bytes, count: int) -> list[str]:
    """The first ``count`` NUL-terminated strings of ``data`` (the last NUL may be missing);
    ProtocolError when there are fewer."""
    strings = data.split(b"\0") if data else []
    if data.endswith(b"\0"):
        strings.pop()
    if len(strings) < count:
        raise ProtocolError("short string in reply")
    return [s.decode("utf-8", "surrogateescape") for s in strings[:count]]


@dataclass(frozen=True, slots=True)
class Modification:
    """One change the milter asks for at the end of the message, decoded.
    ``kind``: add_header, insert_header, change_header, replace_body, add_rcpt, delete_rcpt,
    change_from, quarantine. ``index`` is insert_header's position or change_header's occurrence;
    ``args`` the ESMTP arguments of add_rcpt and change_from."""

    kind: str
    name: str = ""
    value: str = ""
    index: int = 0
    args: str = ""
    data: bytes = b""


def parse_modification(command: bytes, data: bytes) -> Modification:
    if command == R_ADDHEADER:
        name, value = split_cstrings(data, 2)
        return Modification("add_header", name, value)
    if command in (R_INSHEADER, R_CHGHEADER):
        if len(data) < 4:
            raise ProtocolError("short header index")
        (index,) = struct.unpack_from("!I", data)
        name, value = split_cstrings(data[4:], 2)
        return Modification("insert_header" if command == R_INSHEADER else "change_header", name, value, index)
    if command == R_REPLBODY:
        return Modification("replace_body", data=data)
    if command in (R_ADDRCPT, R_DELRCPT):
        (address,) = split_cstrings(data, 1)
        return Modification("add_rcpt" if command == R_ADDRCPT else "delete_rcpt", value=address)
    if command in (R_ADDRCPT_PAR, R_CHGFROM):
        strings = data.split(b"\0")
        if len(strings) < 2:
            raise ProtocolError("short address in reply")
        address = strings[0].decode("utf-8", "surrogateescape")
        args = strings[1].decode("utf-8", "surrogateescape") if len(strings) > 2 else ""
        return Modification("add_rcpt" if command == R_ADDRCPT_PAR else "change_from", value=address, args=args)
    if command == R_QUARANTINE:
        (reason,) = split_cstrings(data, 1)
        return Modification("quarantine", value=reason)
    raise ProtocolError(f"not a modification: {command!r}")


def reply_text(data: bytes) -> str:
    """The text of SMFIR_REPLYCODE (``550 5.7.1 text``, several lines joined by CRLF)."""
    return data.rstrip(b"\0").decode("utf-8", "replace").replace("\r\n", "\n").replace("\n", "\r\n")


def strip_brackets(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        return address[1:-1]
    return address
