"""Writers of common file formats, byte by byte, for the identification and YARA corpora.

Every maker takes an index and returns the bytes of one file of its kind. The index seeds the
contents and the size (a few hundred bytes to a few tens of KiB), so the same index always gives
the same bytes and a corpus of many files needs nothing from the machine running the tests.
The files are real enough for libmagic and for the services: valid headers, consistent offsets
and checksums, compressed data that decompresses, archives that list their members.

``KINDS`` lists every maker with a name and a file suffix; ``tests/corpus.py`` writes them out.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import importlib.util
import io
import lzma
import marshal
import math
import random
import sqlite3
import struct
import tarfile
import wave
import zlib
from collections.abc import Callable

import zstandard

WORDS = (
    "sensor", "packet", "router", "kitchen", "thermostat", "camera", "firmware", "update", "socket", "beacon",
    "window", "garden", "report", "archive", "signal", "morning", "evening", "device", "network", "bridge",
    "light", "door", "battery", "cloud", "account", "session", "record", "motion", "voice", "schedule",
    "alpha", "delta", "river", "stone", "paper", "yellow", "quiet", "rapid", "simple", "careful",
)  # fmt: skip
NAMES = ("Ada Moreau", "Bram Okafor", "Chen Li", "Dana Kowalski", "Emre Yilmaz", "Farah Haddad", "Greta Lund")
DOMAINS = ("example.org", "example.com", "example.net")


def _rng(kind: str, index: int) -> random.Random:
    return random.Random(f"{kind}:{index}")


def _size(rng: random.Random, low: int = 200, high: int = 24_000) -> int:
    """Sizes spread over orders of magnitude, most of them small."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(5, 14))]
    return " ".join(words).capitalize() + rng.choice((".", ".", ".", "?", "!"))


def _prose(rng: random.Random, size: int) -> str:
    paragraphs, made = [], 0
    while made < size:
        paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))
        paragraphs.append(paragraph)
        made += len(paragraph) + 2
    return "\n\n".join(paragraphs) + "\n"


def _ident(rng: random.Random) -> str:
    return "_".join(rng.sample(WORDS, 2))


def _person(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(NAMES)
    return name, f"{name.split()[0].lower()}@{rng.choice(DOMAINS)}"


def _notice(rng: random.Random, comment: str) -> str:
    """A short copyright and licence header in the comment syntax given."""
    name, email = _person(rng)
    year = 2010 + rng.randrange(15)
    lines = [f"Copyright (C) {year} {name} <{email}>", ""]
    if rng.random() < 0.5:
        lines += [
            "This file is part of a GNU package. It is Free Software: the license",
            "is the GNU General Public License, version 3 or later; see the license",
            "file that comes with the package.",
        ]
    else:
        lines += ["Released under the MIT license; see the LICENSE file for the license text."]
    prefix = f"{comment} " if comment else ""
    return "".join((prefix + line).rstrip() + "\n" for line in lines)


# --- text ------------------------------------------------------------------------------------


def prose(i: int) -> bytes:
    rng = _rng("prose", i)
    text = _prose(rng, _size(rng))
    if i % 3 == 0:
        name, email = _person(rng)
        text += f"\nQuestions go to {name} <{email}>.\n"
    return text.encode()


def readme(i: int) -> bytes:
    rng = _rng("readme", i)
    title = _ident(rng).replace("_", "-")
    body = _prose(rng, _size(rng, 300, 6000))
    usage = "\n".join(f"    {title} --{rng.choice(WORDS)} {rng.randint(1, 99)}" for _ in range(3))
    return f"{title}\n{'=' * len(title)}\n\n{body}\nUsage\n-----\n\n{usage}\n\n{_notice(rng, '')}".encode()


def log(i: int) -> bytes:
    rng = _rng("log", i)
    lines, seconds = [], 1_500_000_000 + i * 86_400
    for _ in range(_size(rng, 5, 400)):
        seconds += rng.randint(0, 90)
        day = seconds // 86_400 % 28 + 1
        clock = f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        level = rng.choice(("INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"))
        device = rng.choice(WORDS)
        lines.append(f"2017-07-{day:02d} {clock} {level} {device}[{rng.randint(100, 9999)}]: {_sentence(rng)}")
    return ("\n".join(lines) + "\n").encode()


def config(i: int) -> bytes:
    rng = _rng("config", i)
    out = [f"# {_sentence(rng)}", ""]
    for _ in range(rng.randint(1, 8)):
        out.append(f"[{rng.choice(WORDS)}]")
        for _ in range(rng.randint(1, 10)):
            value = rng.choice((str(rng.randint(0, 65535)), rng.choice(WORDS), "yes", "no", f"/var/lib/{_ident(rng)}"))
            out.append(f"{_ident(rng)} = {value}")
        out.append("")
    return "\n".join(out).encode()


def csv(i: int) -> bytes:
    rng = _rng("csv", i)
    columns = rng.sample(WORDS, rng.randint(3, 7))
    rows = [",".join(columns)]
    for _ in range(_size(rng, 4, 600)):
        rows.append(",".join(str(rng.randint(0, 9999)) if rng.random() < 0.6 else rng.choice(WORDS) for _ in columns))
    return ("\n".join(rows) + "\n").encode()


def pem_certificate(i: int) -> bytes:
    rng = _rng("pem", i)
    blocks = []
    for _ in range(1 + i % 3):
        der = b"\x30\x82" + struct.pack(">H", 600) + rng.randbytes(600)
        lines = base64.b64encode(der).decode()
        blocks.append(
            "-----BEGIN CERTIFICATE-----\n"
            + "\n".join(lines[n : n + 64] for n in range(0, len(lines), 64))
            + "\n-----END CERTIFICATE-----\n"
        )
    return "".join(blocks).encode()


def pgp_public_key(i: int) -> bytes:
    """An ASCII-armoured OpenPGP public key (a v4 RSA key packet and a user id packet)."""
    rng = _rng("pgp", i)
    bits = (2048, 3072, 4096)[i % 3]
    modulus = rng.randbytes(bits // 8)
    modulus = bytes([modulus[0] | 0x80]) + modulus[1:]
    key = bytes([4]) + struct.pack(">I", 1_400_000_000 + i * 1000) + bytes([1])
    key += struct.pack(">H", bits) + modulus + struct.pack(">H", 17) + b"\x01\x00\x01"
    name, email = _person(rng)
    uid = f"{name} <{email}>".encode()
    packets = b"\x99" + struct.pack(">H", len(key)) + key + b"\xb4" + bytes([len(uid)]) + uid
    body = base64.b64encode(packets).decode()
    crc = _crc24(packets)
    return (
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
        + "\n".join(body[n : n + 64] for n in range(0, len(body), 64))
        + f"\n={base64.b64encode(crc.to_bytes(3, 'big')).decode()}\n-----END PGP PUBLIC KEY BLOCK-----\n"
    ).encode()


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def c_source(i: int) -> bytes:
    rng = _rng("c", i)
    headers = rng.sample(("stdio.h", "stdlib.h", "string.h", "errno.h", "stdint.h", "unistd.h"), 3)
    out = ["/*", *_notice(rng, " *").splitlines(), " */", ""]
    out += [f"#include <{h}>" for h in headers] + ["", f"#define LIMIT_{i} {rng.randint(8, 4096)}", ""]
    for _ in range(_size(rng, 1, 30)):
        name, arg = _ident(rng), rng.choice(WORDS)
        out += [
            f"static int {name}(const char *{arg}, size_t length)",
            "{",
            "\tsize_t i;",
            "\tint total = 0;",
            f"\tfor (i = 0; i < length && {arg}[i] != '\\0'; i++)",
            f"\t\ttotal += ({arg}[i] * {rng.randint(3, 97)}) % {rng.randint(7, 251)};",
            "\treturn total;",
            "}",
            "",
        ]
    out += ["int main(int argc, char **argv)", "{", '\tprintf("%d\\n", argc);', "\treturn 0;", "}", ""]
    return "\n".join(out).encode()


def c_header(i: int) -> bytes:
    rng = _rng("h", i)
    guard = f"{_ident(rng).upper()}_H"
    out = ["/*", *_notice(rng, " *").splitlines(), " */", ""]
    out += [f"#ifndef {guard}", f"#define {guard}", "", "#include <stddef.h>", ""]
    for _ in range(_size(rng, 1, 25)):
        struct_name = _ident(rng)
        fields = "".join(f"\tint {w};\n" for w in rng.sample(WORDS, rng.randint(1, 6)))
        out += [f"struct {struct_name} {{\n{fields}}};", "", f"int {struct_name}_init(struct {struct_name} *self);", ""]
    out += [f"#endif /* {guard} */", ""]
    return "\n".join(out).encode()


def makefile(i: int) -> bytes:
    rng = _rng("make", i)
    target = _ident(rng)
    objects = " ".join(f"{w}.o" for w in rng.sample(WORDS, rng.randint(1, 8)))
    return (
        f"CC = gcc\nCFLAGS = -O{rng.randint(0, 3)} -Wall\nOBJECTS = {objects}\n\n"
        f"all: {target}\n\n{target}: $(OBJECTS)\n\t$(CC) $(CFLAGS) -o $@ $^\n\n"
        f"%.o: %.c\n\t$(CC) $(CFLAGS) -c -o $@ $<\n\nclean:\n\trm -f {target} $(OBJECTS)\n\n.PHONY: all clean\n"
    ).encode()


def unified_diff(i: int) -> bytes:
    rng = _rng("diff", i)
    out = []
    for _ in range(rng.randint(1, 5)):
        name = f"src/{_ident(rng)}.c"
        out += [f"diff --git a/{name} b/{name}", f"index {rng.randbytes(4).hex()}..{rng.randbytes(4).hex()} 100644"]
        out += [f"--- a/{name}", f"+++ b/{name}"]
        for _ in range(rng.randint(1, 4)):
            start = rng.randint(1, 900)
            out.append(f"@@ -{start},6 +{start},6 @@")
            out += [f" {_sentence(rng)}", f" {_sentence(rng)}", f"-{_sentence(rng)}", f"+{_sentence(rng)}"]
            out += [f" {_sentence(rng)}", f" {_sentence(rng)}"]
    return ("\n".join(out) + "\n").encode()


def man_page(i: int) -> bytes:
    """A manual page in troff source, as under ``/usr/share/man``."""
    rng = _rng("man", i)
    name = _ident(rng).replace("_", "-")
    name_, email = _person(rng)
    options = "".join(
        f'.TP\n.BR \\-{w[0]} ", " \\-\\-{w}\n{_sentence(rng)}\n' for w in rng.sample(WORDS, rng.randint(2, 9))
    )
    return (
        f'.TH {name.upper()} {1 + i % 8} "2024-0{1 + i % 9}-1{i % 10}" "{name} {i}.0" "User Commands"\n'
        f".SH NAME\n{name} \\- {_sentence(rng).lower()}\n"
        f".SH SYNOPSIS\n.B {name}\n[\\fIOPTION\\fR]... [\\fIFILE\\fR]...\n"
        f".SH DESCRIPTION\n{_prose(rng, _size(rng, 200, 3000))}"
        f".SH OPTIONS\n{options}"
        f".SH AUTHOR\nWritten by {name_} <{email}>.\n"
    ).encode()


def xpm_image(i: int) -> bytes:
    rng = _rng("xpm", i)
    width, height = rng.randint(4, 48), rng.randint(4, 48)
    symbols = ".#+@$%&*"[: rng.randint(2, 8)]
    colours = "".join(f'"{s} c #{rng.randbytes(3).hex()}",\n' for s in symbols)
    rows = ",\n".join('"' + "".join(rng.choice(symbols) for _ in range(width)) + '"' for _ in range(height))
    values = f'"{width} {height} {len(symbols)} 1",\n'
    return f"/* XPM */\nstatic char *{_ident(rng)}[] = {{\n{values}{colours}{rows}}};\n".encode()


def svg_image(i: int) -> bytes:
    rng = _rng("svg", i)
    shapes = []
    for _ in range(_size(rng, 1, 200)):
        x, y, size = rng.randint(0, 200), rng.randint(0, 200), rng.randint(2, 60)
        colour = rng.randbytes(3).hex()
        if rng.random() < 0.5:
            shapes.append(f'  <rect x="{x}" y="{y}" width="{size}" height="{size // 2 + 1}" fill="#{colour}"/>')
        else:
            shapes.append(f'  <circle cx="{x}" cy="{y}" r="{size // 2 + 1}" stroke="#{colour}" fill="none"/>')
    head = '<?xml version="1.0" encoding="UTF-8"?>\n' if i % 2 else ""
    body = "\n".join(shapes)
    return f'{head}<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">\n{body}\n</svg>\n'.encode()


def latex(i: int) -> bytes:
    rng = _rng("tex", i)
    sections = "".join(f"\\section{{{w.capitalize()}}}\n{_prose(rng, 400)}\n" for w in rng.sample(WORDS, 3))
    head = f"\\documentclass{{article}}\n\\title{{{_sentence(rng)}}}\n"
    return f"{head}\\begin{{document}}\n{sections}\\end{{document}}\n".encode()


def rtf(i: int) -> bytes:
    rng = _rng("rtf", i)
    paragraphs = "".join(f"\\pard {_sentence(rng)}\\par\n" for _ in range(_size(rng, 1, 120)))
    return ("{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Times New Roman;}}\n" + paragraphs + "}\n").encode()


# --- scripts ---------------------------------------------------------------------------------


def shell_script(i: int) -> bytes:
    rng = _rng("sh", i)
    shell = ("#!/bin/sh", "#!/bin/bash", "#!/usr/bin/env bash")[i % 3]
    body = [shell, _notice(rng, "#"), "set -e", ""]
    for _ in range(_size(rng, 1, 40)):
        variable = _ident(rng).upper()
        body += [
            f'{variable}="${{{variable}:-/var/lib/{rng.choice(WORDS)}}}"',
            f'if [ -d "${variable}" ]; then',
            f'    echo "{_sentence(rng)}" >> "${variable}/log"',
            "fi",
        ]
    return ("\n".join(body) + "\nexit 0\n").encode()


def python_script(i: int) -> bytes:
    rng = _rng("py", i)
    out = ["#!/usr/bin/python3" if i % 2 else "#!/usr/bin/env python3", f'"""{_sentence(rng)}"""', ""]
    out += ["import sys", "", ""]
    for _ in range(_size(rng, 1, 25)):
        name = _ident(rng)
        out += [f"def {name}(values):", f"    return sum(v * {rng.randint(2, 99)} for v in values)", "", ""]
    out += ['if __name__ == "__main__":', "    print(len(sys.argv))", ""]
    return "\n".join(out).encode()


def perl_script(i: int) -> bytes:
    rng = _rng("pl", i)
    out = ["#!/usr/bin/perl", _notice(rng, "#"), "use strict;", "use warnings;", ""]
    for _ in range(_size(rng, 1, 25)):
        out += [f"sub {_ident(rng)} {{", "    my ($value) = @_;", f"    return $value * {rng.randint(2, 99)};", "}", ""]
    out += ['print "done\\n";', ""]
    return "\n".join(out).encode()


def perl_module(i: int) -> bytes:
    """A Perl module as under ``/usr/share/perl5`` (libmagic calls it text/plain)."""
    rng = _rng("pm", i)
    package = "::".join(w.capitalize() for w in rng.sample(WORDS, 2))
    name, email = _person(rng)
    out = [f"package {package};", "", "use strict;", "use warnings;", "", f"our $VERSION = '{i}.0{i % 7}';", ""]
    for _ in range(_size(rng, 1, 20)):
        out += [f"sub {_ident(rng)} {{", "    my ($self, %args) = @_;", f"    return $self->{{{rng.choice(WORDS)}}};"]
        out += ["}", ""]
    out += ["1;", "", "__END__", "", "=head1 NAME", "", f"{package} - {_sentence(rng)}", "", "=head1 AUTHOR", ""]
    out += [f"{name} E<lt>{email}E<gt>", "", "=head1 LICENSE", "", "Same license as Perl itself; see the license file."]
    return ("\n".join(out) + "\n\n=cut\n").encode()


def ruby_script(i: int) -> bytes:
    rng = _rng("rb", i)
    lines = [f"def {_ident(rng)}(x)\n  x * {rng.randint(2, 9)}\nend\n" for _ in range(_size(rng, 1, 20))]
    return ("#!/usr/bin/env ruby\n" + "\n".join(lines) + "puts ARGV.length\n").encode()


def php_script(i: int) -> bytes:
    rng = _rng("php", i)
    lines = [
        f"function {_ident(rng)}($x) {{\n    return $x * {rng.randint(2, 9)};\n}}\n" for _ in range(_size(rng, 1, 20))
    ]
    return ("<?php\n" + "\n".join(lines) + "echo count($argv);\n").encode()


def lua_script(i: int) -> bytes:
    rng = _rng("lua", i)
    lines = [
        f"local function {_ident(rng)}(x)\n  return x * {rng.randint(2, 9)}\nend\n" for _ in range(_size(rng, 1, 20))
    ]
    return ("#!/usr/bin/env lua\n" + "\n".join(lines) + "print(#arg)\n").encode()


def tcl_script(i: int) -> bytes:
    rng = _rng("tcl", i)
    lines = [f"proc {_ident(rng)} {{x}} {{\n    return [expr {{$x * {rng.randint(2, 9)}}}]\n}}\n" for _ in range(8)]
    return ("#!/usr/bin/tclsh\n" + "\n".join(lines) + "puts [llength $argv]\n").encode()


def awk_script(i: int) -> bytes:
    rng = _rng("awk", i)
    field = rng.randint(1, 9)
    return f"#!/usr/bin/awk -f\n# {_sentence(rng)}\n{{ total += ${field} }}\nEND {{ print total }}\n".encode()


# --- images and sound ------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_image(i: int) -> bytes:
    rng = _rng("png", i)
    return _png(rng, rng.randint(1, 96), rng.randint(1, 96), ((0, 1), (2, 3), (6, 4))[i % 3])


def _png(rng: random.Random, width: int, height: int, colour: tuple[int, int]) -> bytes:
    """Signature, IHDR, one IDAT of unfiltered rows, IEND; ``colour`` is (colour type, channels)."""
    colour_type, channels = colour
    rows = b"".join(b"\x00" + rng.randbytes(width * channels) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def gif_image(i: int) -> bytes:
    """A GIF89a with a 256-colour table; LZW data of literal codes, a clear code every 254."""
    rng = _rng("gif", i)
    width, height = rng.randint(1, 64), rng.randint(1, 64)
    pixels = rng.randbytes(width * height)
    codes = []
    for start in range(0, len(pixels), 254):
        codes.append(256)
        codes.extend(pixels[start : start + 254])
    codes.append(257)
    bits = value = 0
    packed = bytearray()
    for code in codes:
        value |= code << bits
        bits += 9
        while bits >= 8:
            packed.append(value & 0xFF)
            value >>= 8
            bits -= 8
    if bits:
        packed.append(value)
    blocks = b"".join(bytes([len(packed[n : n + 255])]) + packed[n : n + 255] for n in range(0, len(packed), 255))
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0xF7, 0, 0)
        + rng.randbytes(768)
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, width, height, 0)
        + b"\x08"
        + blocks
        + b"\x00\x3b"
    )


def _dib(rng: random.Random, width: int, height: int, rows_height: int | None = None) -> bytes:
    """A BITMAPINFOHEADER and 24-bit rows (each padded to four bytes)."""
    stride = (width * 3 + 3) & ~3
    pixels = b"".join(rng.randbytes(width * 3).ljust(stride, b"\x00") for _ in range(height))
    info = struct.pack("<IiiHHIIiiII", 40, width, rows_height or height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return info + pixels


def bmp_image(i: int) -> bytes:
    rng = _rng("bmp", i)
    dib = _dib(rng, rng.randint(1, 80), rng.randint(1, 80))
    return struct.pack("<2sIHHI", b"BM", 14 + len(dib), 0, 0, 54) + dib


def ico_image(i: int) -> bytes:
    """A Windows icon of one to three images, each a DIB (with its empty AND mask) or a PNG."""
    rng = _rng("ico", i)
    images = []
    for n in range(1 + i % 3):
        side = (16, 32, 48)[n]
        if (i + n) % 2:
            images.append((side, _png(rng, side, side, (6, 4))))
        else:
            mask = b"\x00" * (((side + 31) // 32) * 4 * side)
            images.append((side, _dib(rng, side, side, rows_height=2 * side) + mask))
    offset = 6 + 16 * len(images)
    entries = b""
    for side, data in images:
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 24, len(data), offset)
        offset += len(data)
    return struct.pack("<HHH", 0, 1, len(images)) + entries + b"".join(data for _, data in images)


def wav_sound(i: int) -> bytes:
    rng = _rng("wav", i)
    rate = (8000, 16000, 22050, 44100)[i % 4]
    tone = rng.uniform(200, 2000)
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * tone * n / rate))) for n in range(_size(rng, 200, 12000))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(rate)
        sound.writeframes(frames)
    return buffer.getvalue()


def midi_song(i: int) -> bytes:
    rng = _rng("midi", i)
    events = bytearray()
    for _ in range(_size(rng, 4, 400)):
        note = rng.randint(40, 90)
        events += bytes([0, 0x90, note, rng.randint(40, 120), rng.randint(1, 96), 0x80, note, 0])
    events += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)


# --- binaries --------------------------------------------------------------------------------

# (e_machine, class bits, byte order, interpreter, e_flags)
ELF_MACHINES = (
    (62, 64, "<", "/lib64/ld-linux-x86-64.so.2", 0),  # x86-64
    (3, 32, "<", "/lib/ld-linux.so.2", 0),  # i386
    (40, 32, "<", "/lib/ld-linux-armhf.so.3", 0x05000400),  # ARM EABI5, hard float
    (8, 32, ">", "/lib/ld.so.1", 0x70001007),  # MIPS32r2, big-endian
    (183, 64, "<", "/lib/ld-linux-aarch64.so.1", 0),  # AArch64
)
ET_REL, ET_EXEC, ET_DYN, ET_CORE = 1, 2, 3, 4
DF_1_PIE = 0x08000000
GLIBC_FUNCTIONS = ("printf", "malloc", "free", "socket", "connect", "memcpy", "strlen", "fopen", "getaddrinfo")


def elf_file(i: int, elf_type: int, pie: bool = False) -> bytes:
    """An ELF of the type given: program headers (interpreter, load, dynamic) unless relocatable,
    a dynamic string table naming libc functions with their GLIBC versions, random code, and a
    section header table (.text, .dynstr, .shstrtab) at the end."""
    rng = _rng(f"elf{elf_type}{pie}", i)
    machine, bits, order, interpreter, flags = ELF_MACHINES[i % len(ELF_MACHINES)]
    wide = bits == 64
    ehdr_size, phdr_size, shdr_size = (64, 56, 64) if wide else (52, 32, 40)
    base = 0 if elf_type in (ET_DYN, ET_REL) else (0x400000 if wide else 0x8048000)
    functions = rng.sample(GLIBC_FUNCTIONS, rng.randint(2, len(GLIBC_FUNCTIONS)))
    needed = ["libc.so.6"] + (["libm.so.6"] if i % 2 else [])
    dynstr = b"\x00" + b"".join(f"{name}\x00".encode() for name in [*needed, *functions, "GLIBC_2.17", "GLIBC_2.4"])
    code = b"".join(rng.choice((b"\x90", b"\xc3", b"\x55\x48\x89\xe5", rng.randbytes(4))) for _ in range(_size(rng)))

    dynamic_program = elf_type in (ET_EXEC, ET_DYN)
    with_interpreter = dynamic_program and (elf_type == ET_EXEC or pie)
    phnum = (3 if with_interpreter else 2) if dynamic_program else 0
    offset = ehdr_size + phnum * phdr_size
    interp = interpreter.encode() + b"\x00" if with_interpreter else b""
    interp_at, offset = offset, offset + len(interp)
    dynstr_at, offset = offset, offset + len(dynstr)
    dyn_entry = order + ("qQ" if wide else "iI")
    entries = [(1, dynstr.index(name.encode() + b"\x00")) for name in needed]
    entries += [(5, base + dynstr_at), (10, len(dynstr))]
    if pie:
        entries.append((0x6FFFFFFB, DF_1_PIE))
    entries.append((0, 0))
    dynamic = b"".join(struct.pack(dyn_entry, tag, value) for tag, value in entries) if dynamic_program else b""
    dynamic_at, offset = offset, offset + len(dynamic)
    text_at, offset = offset, offset + len(code)
    shstrtab = b"\x00.text\x00.dynstr\x00.shstrtab\x00"
    shstrtab_at, offset = offset, offset + len(shstrtab)
    shoff = (offset + 7) & ~7

    def phdr(kind: int, p_flags: int, at: int, size: int, align: int) -> bytes:
        if wide:
            return struct.pack(order + "IIQQQQQQ", kind, p_flags, at, base + at, base + at, size, size, align)
        return struct.pack(order + "IIIIIIII", kind, at, base + at, base + at, size, size, p_flags, align)

    phdrs = b""
    if with_interpreter:
        phdrs += phdr(3, 4, interp_at, len(interp), 1)
    if dynamic_program:
        phdrs += phdr(1, 5, 0, shstrtab_at, 0x1000) + phdr(2, 6, dynamic_at, len(dynamic), 8)

    def shdr(name: int, kind: int, sh_flags: int, at: int, size: int) -> bytes:
        address = base + at if sh_flags & 2 else 0
        layout = "IIQQQQIIQQ" if wide else "IIIIIIIIII"
        return struct.pack(order + layout, name, kind, sh_flags, address, at, size, 0, 0, 1, 0)

    sections = shdr(0, 0, 0, 0, 0)
    sections += shdr(1, 1, 6, text_at, len(code))
    sections += shdr(7, 3, 2, dynstr_at, len(dynstr))
    sections += shdr(15, 3, 0, shstrtab_at, len(shstrtab))
    entry = base + text_at if elf_type != ET_REL else 0
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if order == "<" else 2, 1, 0]) + b"\x00" * 8
    fields = (elf_type, machine, 1, entry, ehdr_size if phnum else 0, shoff, flags, ehdr_size, phdr_size, phnum)
    header = ident + struct.pack(order + ("HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH"), *fields, shdr_size, 4, 3)
    body = header + phdrs + interp + dynstr + dynamic + code + shstrtab
    return body.ljust(shoff, b"\x00") + sections


def pe_file(i: int) -> bytes:
    """A Windows PE: PE32 (i386) or PE32+ (x86-64), console, GUI or DLL, two or three sections."""
    rng = _rng("pe", i)
    wide = i % 2 == 1
    subsystem, dll = ((3, False), (2, False), (2, True))[i % 3]
    sections = [(b".text", 0x60000020, rng.randbytes(_size(rng, 300, 20_000)))]
    sections.append((b".rdata", 0x40000040, b"".join(f"{w}\x00".encode() for w in rng.sample(WORDS, 12))))
    if i % 4 == 0:
        sections.append((b".data", 0xC0000040, rng.randbytes(512)))
    file_align, section_align = 0x200, 0x1000
    dos = bytearray(0x40)
    struct.pack_into("<2sHHHHHHHH", dos, 0, b"MZ", 0x90, 3, 0, 4, 0, 0xFFFF, 0, 0xB8)
    struct.pack_into("<I", dos, 0x3C, 0x80)  # e_lfanew: the PE header follows the stub
    stub = b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21This program cannot be run in DOS mode.\r\r\n$"
    dos = bytes(dos) + stub.ljust(0x40, b"\x00")
    optional_size = 240 if wide else 224
    headers_size = -(-(0x80 + 24 + optional_size + 40 * len(sections)) // file_align) * file_align
    table, raw, raw_at, rva = b"", b"", headers_size, section_align
    for name, characteristics, data in sections:
        raw_size = -(-len(data) // file_align) * file_align
        table += struct.pack("<8sIIIIIIHHI", name, len(data), rva, raw_size, raw_at, 0, 0, 0, 0, characteristics)
        raw += data.ljust(raw_size, b"\x00")
        raw_at += raw_size
        rva += -(-len(data) // section_align) * section_align
    characteristics = 0x0002 | (0x0020 if wide else 0x0100) | (0x2000 if dll else 0)
    machine, timestamp = (0x8664 if wide else 0x14C), 1_300_000_000 + i * 7919
    coff = struct.pack("<HHIIIHH", machine, len(sections), timestamp, 0, 0, optional_size, characteristics)
    code_size = -(-len(sections[0][2]) // file_align) * file_align
    if wide:
        optional = struct.pack("<HBBIIIII", 0x20B, 14, 0, code_size, 0, 0, section_align, section_align)
        optional += struct.pack("<QII", 0x140000000, section_align, file_align)
    else:
        optional = struct.pack("<HBBIIIIII", 0x10B, 14, 0, code_size, 0, 0, section_align, section_align, 0)
        optional += struct.pack("<III", 0x400000, section_align, file_align)
    optional += struct.pack("<HHHHHHIIII", 6, 0, 0, 0, 6, 0, 0, rva, headers_size, 0)
    optional += struct.pack("<HH", subsystem, 0x8160)
    optional += struct.pack("<QQQQ" if wide else "<IIII", 0x100000, 0x1000, 0x100000, 0x1000)
    optional += struct.pack("<II", 0, 16) + b"\x00" * 128
    head = dos + b"PE\x00\x00" + coff + optional + table
    return head.ljust(headers_size, b"\x00") + raw


def java_class(i: int) -> bytes:
    """A minimal valid class file: a public class extending java.lang.Object, no members."""
    rng = _rng("class", i)
    name = f"org/example/{_ident(rng).capitalize()}".encode()

    def utf8(text: bytes) -> bytes:
        return b"\x01" + struct.pack(">H", len(text)) + text

    pool = b"\x07\x00\x02" + utf8(name) + b"\x07\x00\x04" + utf8(b"java/lang/Object")
    major = 50 + i % 12
    return (
        b"\xca\xfe\xba\xbe" + struct.pack(">HHH", 0, major, 5) + pool + struct.pack(">HHHHHHH", 0x21, 1, 3, 0, 0, 0, 0)
    )


def python_bytecode(i: int) -> bytes:
    """A ``.pyc`` of this interpreter: magic, flags, source mtime and size, marshalled code."""
    source = python_script(i).decode()
    code = compile(source, f"module{i}.py", "exec")
    return importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, 1_600_000_000 + i, len(source)) + marshal.dumps(code)


def sqlite_database(i: int) -> bytes:
    rng = _rng("sqlite", i)
    connection = sqlite3.connect(":memory:")
    try:
        table, columns = _ident(rng), [f'"{w}"' for w in rng.sample(WORDS, rng.randint(2, 6))]
        connection.execute(f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, {", ".join(columns)})')
        rows = [[rng.choice(WORDS) for _ in columns] for _ in range(_size(rng, 1, 400))]
        marks = ", ".join("?" * len(columns))
        connection.executemany(f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})', rows)
        connection.commit()
        return connection.serialize()
    finally:
        connection.close()


def timezone_data(i: int) -> bytes:
    """TZif version 2, as under ``/usr/share/zoneinfo``: 32-bit and 64-bit blocks and a POSIX TZ footer."""
    rng = _rng("tzif", i)
    offset = rng.choice((-5, -3, 1, 2, 3, 9)) * 3600
    abbreviations = b"STD\x00DST\x00"
    types = [(offset, 0, 0), (offset + 3600, 1, 4)]
    start = 1_000_000_000 + rng.randrange(10**7)
    times = [start + n * 15_778_800 for n in range(rng.randint(2, 60))]  # until 2038
    indices = bytes(n % 2 for n in range(len(times)))

    def block(width: str) -> bytes:
        counts = struct.pack(">6I", 0, 0, 0, len(times), len(types), len(abbreviations))
        data = b"".join(struct.pack(">" + width, t) for t in times) + indices
        data += b"".join(struct.pack(">iBB", *t) for t in types) + abbreviations
        return b"TZif2" + b"\x00" * 15 + counts + data

    footer = f"\nSTD{-offset // 3600}DST,M3.5.0,M10.5.0/3\n".encode()
    return block("i") + block("q") + footer


def gdbm_database(i: int) -> bytes:
    """The header block of a GNU dbm file (64-bit, little-endian) and empty buckets."""
    rng = _rng("gdbm", i)
    block = 512 * (1 + i % 8)
    header = struct.pack("<IiqiiiiqIi", 0x13579ACF, block, block, 8 * 2, 1, block, 31, 3 * block, 0, 0)
    return header.ljust(block, b"\x00") + rng.randbytes(block) + b"\x00" * block


def pcap_capture(i: int) -> bytes:
    """A libpcap file of UDP datagrams between two addresses, Ethernet link type."""
    rng = _rng("pcap", i)
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    source, target = bytes([192, 0, 2, rng.randint(1, 254)]), bytes([198, 51, 100, rng.randint(1, 254)])
    for n in range(_size(rng, 1, 200)):
        payload = _sentence(rng).encode()
        udp = struct.pack(">HHHH", 40000 + n % 1000, rng.choice((53, 123, 1900, 5683)), 8 + len(payload), 0) + payload
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n, 0, 64, 17, 0, source, target) + udp
        frame = rng.randbytes(6) + rng.randbytes(6) + b"\x08\x00" + ip
        out += struct.pack("<IIII", 1_500_000_000 + n, rng.randrange(10**6), len(frame), len(frame)) + frame
    return out


def random_bytes(i: int) -> bytes:
    rng = _rng("random", i)
    return rng.randbytes(_size(rng, 64, 32_000))


# --- compressed data and archives ------------------------------------------------------------


def _payload(i: int) -> bytes:
    """The contents compressed by the makers below: text of several kinds, sometimes random bytes."""
    makers = (prose, log, man_page, c_source, csv, random_bytes)
    return makers[i % len(makers)](i)


def gzip_data(i: int) -> bytes:
    return gzip.compress(_payload(i), compresslevel=1 + i % 9, mtime=0)


def bzip2_data(i: int) -> bytes:
    return bz2.compress(_payload(i + 1), 1 + i % 9)


def xz_data(i: int) -> bytes:
    return lzma.compress(_payload(i + 2), preset=i % 7)


def lzma_data(i: int) -> bytes:
    return lzma.compress(_payload(i + 3), format=lzma.FORMAT_ALONE)


def zstd_data(i: int) -> bytes:
    return zstandard.ZstdCompressor(level=1 + i % 19).compress(_payload(i + 4))


def _members(i: int) -> dict[str, bytes]:
    rng = _rng("members", i)
    return {f"{rng.choice(WORDS)}/{_ident(rng)}{n}.txt": _payload(i + n)[:8000] for n in range(1 + i % 5)}


def tar_gz(i: int) -> bytes:
    return _tar_gz(_members(i), i)


def _tar_gz(members: dict[str, bytes], i: int) -> bytes:
    """A GNU tar of ``members``, gzip-compressed with a zero timestamp, so the bytes never vary."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_500_000_000 + i, 0o644
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


def cpio_archive(i: int) -> bytes:
    """An SVR4 "newc" cpio archive, as inside initramfs images and RPM payloads."""
    out = b""
    members = [*_members(i).items(), ("TRAILER!!!", b"")]
    for number, (name, data) in enumerate(members, 1):
        encoded = name.encode() + b"\x00"
        mode = 0o100644 if data or name != "TRAILER!!!" else 0
        fields = (number, mode, 0, 0, 1, 1_500_000_000 + i, len(data), 0, 0, 0, 0, len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        out += (header + encoded).ljust(-(-(len(header) + len(encoded)) // 4) * 4, b"\x00")
        out += data.ljust(-(-len(data) // 4) * 4, b"\x00")
    return out


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name:<16}{1_500_000_000:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def ar_archive(i: int) -> bytes:
    """A static library (``ar``) of ELF relocatable objects."""
    return _ar([(f"{WORDS[(i + n) % len(WORDS)]}.o/", elf_file(i + n, ET_REL)) for n in range(1 + i % 4)])


def debian_package(i: int) -> bytes:
    rng = _rng("deb", i)
    name = _ident(rng).replace("_", "-")
    control = f"Package: {name}\nVersion: 1.{i}\nArchitecture: amd64\nDescription: {_sentence(rng)}\n".encode()

    files = {f"./usr/share/doc/{name}/README": readme(i), f"./usr/bin/{name}": shell_script(i)}
    control_tar, data_tar = _tar_gz({"./control": control}, i), _tar_gz(files, i)
    return _ar([("debian-binary", b"2.0\n"), ("control.tar.gz", control_tar), ("data.tar.gz", data_tar)])


Maker = Callable[[int], bytes]

# (name, suffix, maker); each gives files libmagic names with its own MIME type or description
KINDS: tuple[tuple[str, str, Maker], ...] = (
    ("prose", ".txt", prose),
    ("readme", "", readme),
    ("log", ".log", log),
    ("config", ".conf", config),
    ("table", ".csv", csv),
    ("certificate", ".pem", pem_certificate),
    ("pubkey", ".asc", pgp_public_key),
    ("source", ".c", c_source),
    ("header", ".h", c_header),
    ("makefile", "", makefile),
    ("change", ".diff", unified_diff),
    ("manual", ".1", man_page),
    ("pixmap", ".xpm", xpm_image),
    ("drawing", ".svg", svg_image),
    ("paper", ".tex", latex),
    ("letter", ".rtf", rtf),
    ("shell", ".sh", shell_script),
    ("python", "", python_script),
    ("perl", "", perl_script),
    ("module", ".pm", perl_module),
    ("ruby", ".rb", ruby_script),
    ("php", ".php", php_script),
    ("lua", ".lua", lua_script),
    ("tcl", ".tcl", tcl_script),
    ("awk", ".awk", awk_script),
    ("picture", ".png", png_image),
    ("animation", ".gif", gif_image),
    ("bitmap", ".bmp", bmp_image),
    ("icon", ".ico", ico_image),
    ("sound", ".wav", wav_sound),
    ("song", ".mid", midi_song),
    ("program", "", lambda i: elf_file(i, ET_EXEC)),
    ("pie", "", lambda i: elf_file(i, ET_DYN, pie=True)),
    ("library", ".so", lambda i: elf_file(i, ET_DYN)),
    ("object", ".o", lambda i: elf_file(i, ET_REL)),
    ("windows", ".exe", pe_file),
    ("classfile", ".class", java_class),
    ("bytecode", ".pyc", python_bytecode),
    ("database", ".sqlite", sqlite_database),
    ("zone", "", timezone_data),
    ("dbm", ".db", gdbm_database),
    ("capture", ".pcap", pcap_capture),
    ("noise", ".bin", random_bytes),
    ("compressed", ".gz", gzip_data),
    ("bzipped", ".bz2", bzip2_data),
    ("xzed", ".xz", xz_data),
    ("lzma", ".lzma", lzma_data),
    ("zstd", ".zst", zstd_data),
    ("tarball", ".tar.gz", tar_gz),
    ("initramfs", ".cpio", cpio_archive),
    ("static", ".a", ar_archive),
    ("package", ".deb", debian_package),
)
