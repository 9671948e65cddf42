"""The PDF of a certificate: A4, Japanese, Noto Serif JP embedded (subset), a QR code to the verification page.

The font comes from the ``pylopdf-fonts-jp`` package (Noto Serif JP, SIL Open Font License 1.1),
installed by ``make install`` with the other requirements, so every machine prints the same glyphs.

The font is parsed once per process, not once per document. fpdf2 parses the 6 MB font file for every
document and at output subsets it with fontTools, executing the CFF charstrings of every glyph used
(bounds, unused subroutines) and compiling the CFF table twice: about 80 % of a certificate's CPU.
Instead, :class:`CertificateFont` keeps the parsed font (read into memory, so a forked work-horse
shares no file offset with its parent) and each glyph's outline once drawn, without subroutines, and
builds for each document a small font of exactly the characters of that document's text; fpdf2 then
embeds that small font as it would the large one, without subsetting it again (``EXACT_SUBSET``). A
font file that changes on disk (a package update) is parsed again at the next document: each document
checks the file's identity (device, inode, size, modification time). Characters the font does not
have print as before: as its .notdef glyph.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import segno
from fontTools import subset as ftsubset
from fontTools.cffLib import FDArrayIndex, FDSelect, FontDict
from fontTools.fontBuilder import FontBuilder
from fontTools.misc.psCharStrings import T2CharString
from fontTools.pens.t2CharStringPen import T2CharStringPen
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import TTFFont
from pylopdf_fonts_jp import serif_path

LABEL_WIDTH = 50
ROW_HEIGHT = 8
FAMILY = "serif"
# Every fixed text the renderer draws besides the content (and the printable ASCII range, for numbers and URLs).
STATEMENTS = {"juminhyo": "この写しは、住民票の原本と相違ないことを証明する。",
              "kisai_jiko": "上記のとおり住民票に記載されていることを証明する。"}
VERIFY_TEXT = "この証明書が有効であることは、次のページで照合番号を入力して確認できます。"
FIXED_TEXT = ("発行番号　", "／通", "長　", "照合番号　", VERIFY_TEXT, *STATEMENTS.values(),
              "".join(chr(c) for c in range(0x20, 0x7F)))
# The name-table entries carried into each document's font: the font's names, its copyright and its licence.
NAME_IDS = {0: "copyright", 1: "familyName", 2: "styleName", 3: "uniqueFontIdentifier", 4: "fullName",
            5: "version", 6: "psName", 13: "licenseDescription", 14: "licenseInfoURL"}


class CertificateFont:
    """One font file parsed once: its character map, metrics and each glyph's outline, drawn on first use.

    Thread-safe (one lock around the parsed font and the outline cache); fork-safe (the file is read
    into memory, and a child gets a fresh lock: see :func:`_after_fork`).
    """

    def __init__(self, path: Path, identity: tuple[int, ...]) -> None:
        self.path = path
        self.identity = identity
        self.lock = threading.Lock()
        self._font = TTFont(io.BytesIO(path.read_bytes()), lazy=True, recalcTimestamp=False)
        self.cmap: dict[int, str] = self._font.getBestCmap()
        self.metrics: dict[str, tuple[int, int]] = dict(self._font["hmtx"].metrics)
        self.units_per_em = int(self._font["head"].unitsPerEm)
        self._charstrings = self._font["CFF "].cff.topDictIndex[0].CharStrings
        self._outlines: dict[str, bytes] = {}
        head, hhea, os2, post = (self._font[t] for t in ("head", "hhea", "OS/2", "post"))
        self.bbox = [head.xMin, head.yMin, head.xMax, head.yMax]
        self.hhea = {k: getattr(hhea, k) for k in ("ascent", "descent", "lineGap", "advanceWidthMax",
                                                    "minLeftSideBearing", "minRightSideBearing", "xMaxExtent")}
        self.os2 = {k: getattr(os2, k) for k in ("sTypoAscender", "sTypoDescender", "sTypoLineGap", "usWinAscent",
                                                  "usWinDescent", "sCapHeight", "usWeightClass", "yStrikeoutSize",
                                                  "yStrikeoutPosition", "fsType")}
        self.post = {k: getattr(post, k) for k in ("italicAngle", "underlinePosition", "underlineThickness",
                                                    "isFixedPitch")}
        names = self._font["name"]
        self.names = {key: str(names.getDebugName(name_id)) for name_id, key in NAME_IDS.items()
                      if names.getDebugName(name_id) is not None}

    def _outline(self, glyph: str) -> bytes:
        """The glyph's Type 2 charstring without subroutines or hints, with its advance width (the lock held)."""
        outline = self._outlines.get(glyph)
        if outline is None:
            pen = T2CharStringPen(self.metrics[glyph][0], None)
            self._charstrings[glyph].draw(pen)
            charstring = pen.getCharString()
            charstring.compile()
            outline = self._outlines[glyph] = bytes(charstring.bytecode)
        return outline

    def subset(self, text: Iterable[str]) -> bytes:
        """An OpenType (CFF) font holding exactly the glyphs of the characters in ``text`` the font has."""
        chars = {c: self.cmap[c] for c in sorted({ord(ch) for part in text for ch in part}) if c in self.cmap}
        glyphs = [".notdef", *sorted(set(chars.values()) - {".notdef"})]
        with self.lock:
            outlines = {glyph: self._outline(glyph) for glyph in glyphs}
        builder = FontBuilder(self.units_per_em, isTTF=False)
        builder.font.recalcBBoxes = False  # the whole font's bounds hold for its subset; no outline is run again
        builder.updateHead(xMin=self.bbox[0], yMin=self.bbox[1], xMax=self.bbox[2], yMax=self.bbox[3])
        builder.setupGlyphOrder(glyphs)
        builder.setupCharacterMap(chars)
        builder.setupCFF(self.names.get("psName", "CertificateFont"),
                         {"FullName": self.names.get("fullName", ""), "FontBBox": self.bbox},
                         {glyph: T2CharString(bytecode=outline) for glyph, outline in outlines.items()}, {})
        _cid_keyed(builder.font["CFF "].cff, len(glyphs))
        builder.setupHorizontalMetrics({glyph: self.metrics[glyph] for glyph in glyphs})
        builder.setupHorizontalHeader(**self.hhea)
        builder.setupNameTable(self.names)
        builder.setupOS2(**self.os2)
        builder.setupPost(**self.post)
        out = io.BytesIO()
        builder.save(out)
        return out.getvalue()


def _cid_keyed(cff: Any, count: int) -> None:
    """Make a built CFF CID-keyed (one font dict), as the source font is, so the PDF declares it as what it is.

    The glyphs keep the source's names (``cid01234``), so each keeps its CID; fpdf2 embeds a CID-keyed
    CFF as a CIDFontType0 font (a name-keyed one it would declare as TrueType, which it is not).
    """
    top = cff.topDictIndex[0]
    top.ROS = ("Adobe", "Identity", 0)
    top.CIDCount = max([count, *(int(name[3:]) + 1 for name in top.charset if name.startswith("cid"))])
    fd_array = FDArrayIndex()
    fd_array.strings = None
    fd_array.GlobalSubrs = cff.GlobalSubrs
    font_dict = FontDict()
    font_dict.Private = top.Private
    fd_array.append(font_dict)
    top.FDArray = fd_array
    fd_select = FDSelect()
    fd_select.format = 3
    fd_select.gidArray = [0] * count
    top.FDSelect = fd_select
    del top.Private
    top.CharStrings.fdSelect = fd_select
    top.CharStrings.fdArray = fd_array


# Marks a document's font (``CertificateFont.subset``): it holds exactly the glyphs the document uses.
EXACT_SUBSET = "certificate_exact_subset"


def _keep_exact_subsets(subset: Any) -> Any:
    """fontTools' ``Subsetter.subset``, leaving alone a font marked ``EXACT_SUBSET``.

    fpdf2 subsets every embedded font at output, with no option to skip it. For a document's font,
    built of exactly the glyphs the document uses, there is nothing to remove, yet subsetting it
    executed every glyph's charstring twice (components, then unused subroutines; it has none) and
    left each to be compiled again: over half of a certificate's CPU. Any other font is subset as
    before.
    """
    if getattr(subset, "keeps_exact_subsets", False):
        return subset

    def keep_exact(self: Any, font: Any) -> Any:
        if getattr(font, EXACT_SUBSET, False):
            return None
        return subset(self, font)

    keep_exact.keeps_exact_subsets = True  # type: ignore[attr-defined]
    return keep_exact


ftsubset.Subsetter.subset = _keep_exact_subsets(ftsubset.Subsetter.subset)

_fonts: dict[Path, CertificateFont] = {}
_fonts_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child (an rq work-horse) gets fresh locks: one held by another thread at the fork never frees."""
    global _fonts_lock
    _fonts_lock = threading.Lock()
    for font in _fonts.values():
        font.lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def certificate_font(path: Path | None = None) -> CertificateFont:
    """The process's parsed font of ``path``, parsed again when the file changed.

    ``path`` is the package's Noto Serif JP unless another file is named (tests, a city's own font).
    """
    path = Path(path or serif_path())
    stat = path.stat()
    identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _fonts_lock:
        font = _fonts.get(path)
        if font is None or font.identity != identity:
            font = _fonts[path] = CertificateFont(path, identity)
        return font


def _strings(value: Any) -> Iterable[str]:
    """Every string in the content (titles, labels, values, codes, URLs), however nested."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _qr(url: str) -> io.BytesIO:
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=6, border=2)
    buf.seek(0)
    return buf


def _copy(pdf: FPDF, content: dict[str, Any], number: int) -> None:
    pdf.add_page()
    pdf.set_font(FAMILY, size=20)
    pdf.cell(0, 14, content["title"], align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, size=9)
    pdf.cell(0, 6, f"発行番号　{content['issueNumber']}", align="R", new_x="LMARGIN", new_y="NEXT")
    if content["copies"] > 1:
        pdf.cell(0, 6, f"{number}／{content['copies']}通", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font(FAMILY, size=11)
    width = pdf.epw - LABEL_WIDTH
    for person in content["persons"]:
        for label, value in person:
            pdf.cell(LABEL_WIDTH, ROW_HEIGHT, label, border=1)
            pdf.multi_cell(width, ROW_HEIGHT, value or "", border=1, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    pdf.ln(4)
    statement = STATEMENTS["juminhyo" if content["kind"] == "juminhyo" else "kisai_jiko"]
    pdf.multi_cell(0, ROW_HEIGHT, statement, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.cell(0, ROW_HEIGHT, content["issuedOnText"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, size=14)
    pdf.cell(0, 12, f"{content['municipality']}長　{content['mayor']}", align="R", new_x="LMARGIN", new_y="NEXT")
    # The verification block: the code (to type) and the QR code (to scan) of the portal's public page.
    top = max(pdf.get_y() + 6, pdf.h - pdf.b_margin - 40)
    if top + 36 > pdf.h - pdf.b_margin:
        pdf.add_page()
        top = pdf.t_margin
    pdf.image(_qr(content["verifyUrl"]), x=pdf.l_margin, y=top, w=32, h=32)
    pdf.set_xy(pdf.l_margin + 36, top + 2)
    pdf.set_font(FAMILY, size=10)
    pdf.multi_cell(0, 6, f"{VERIFY_TEXT}\n照合番号　{content['code']}\n{content['verifyUrl'].split('#')[0]}",
                   new_x="LMARGIN", new_y="NEXT")


def certificate_pdf(content: dict[str, Any], *, font_path: Path | None = None) -> bytes:
    """Render the issued content: one page (or more) per copy, with the font cut to the content's characters."""
    font = certificate_font(font_path)
    pdf = FPDF(format="A4")
    pdf.set_title(content["title"])
    pdf.set_creator(content["municipality"])
    # add_font would parse a file; this registers the document's small font the same way, from memory.
    embedded = TTFFont(pdf, io.BytesIO(font.subset([*FIXED_TEXT, *_strings(content)])),  # type: ignore[arg-type]
                       FAMILY, "")
    embedded.ttfont.recalcBBoxes = False  # the whole font's bounds hold; no outline is run again at output
    setattr(embedded.ttfont, EXACT_SUBSET, True)  # nor subset again: it is exactly the document's glyphs
    pdf.fonts[FAMILY] = embedded
    pdf._set_min_pdf_version("1.6")  # as add_font does for a CID-keyed CFF font
    pdf.set_auto_page_break(auto=True, margin=15)
    for number in range(1, int(content["copies"]) + 1):
        _copy(pdf, content, number)
    return bytes(pdf.output())
