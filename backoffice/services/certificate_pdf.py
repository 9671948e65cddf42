"""The PDF of a certificate: A4, Japanese, Noto Serif JP embedded (subset), a QR code to the verification page.

The font comes from the ``pylopdf-fonts-jp`` package (Noto Serif JP, SIL Open Font License 1.1),
installed by ``make install`` with the other requirements, so every machine prints the same glyphs.
"""

from __future__ import annotations

import io
from typing import Any

import segno
from fpdf import FPDF
from pylopdf_fonts_jp import serif_path

LABEL_WIDTH = 50
ROW_HEIGHT = 8


def _qr(url: str) -> io.BytesIO:
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=6, border=2)
    buf.seek(0)
    return buf


def _copy(pdf: FPDF, content: dict[str, Any], number: int) -> None:
    pdf.add_page()
    pdf.set_font("serif", size=20)
    pdf.cell(0, 14, content["title"], align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", size=9)
    pdf.cell(0, 6, f"発行番号　{content['issueNumber']}", align="R", new_x="LMARGIN", new_y="NEXT")
    if content["copies"] > 1:
        pdf.cell(0, 6, f"{number}／{content['copies']}通", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("serif", size=11)
    width = pdf.epw - LABEL_WIDTH
    for person in content["persons"]:
        for label, value in person:
            pdf.cell(LABEL_WIDTH, ROW_HEIGHT, label, border=1)
            pdf.multi_cell(width, ROW_HEIGHT, value or "", border=1, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    pdf.ln(4)
    if content["kind"] == "juminhyo":
        statement = "この写しは、住民票の原本と相違ないことを証明する。"
    else:
        statement = "上記のとおり住民票に記載されていることを証明する。"
    pdf.multi_cell(0, ROW_HEIGHT, statement, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.cell(0, ROW_HEIGHT, content["issuedOnText"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("serif", size=14)
    pdf.cell(0, 12, f"{content['municipality']}長　{content['mayor']}", align="R", new_x="LMARGIN", new_y="NEXT")
    # The verification block: the code (to type) and the QR code (to scan) of the portal's public page.
    top = max(pdf.get_y() + 6, pdf.h - pdf.b_margin - 40)
    if top + 36 > pdf.h - pdf.b_margin:
        pdf.add_page()
        top = pdf.t_margin
    pdf.image(_qr(content["verifyUrl"]), x=pdf.l_margin, y=top, w=32, h=32)
    pdf.set_xy(pdf.l_margin + 36, top + 2)
    pdf.set_font("serif", size=10)
    pdf.multi_cell(0, 6, "この証明書が有効であることは、次のページで照合番号を入力して確認できます。\n"
                         f"照合番号　{content['code']}\n{content['verifyUrl'].split('#')[0]}",
                   new_x="LMARGIN", new_y="NEXT")


def certificate_pdf(content: dict[str, Any]) -> bytes:
    """Render the issued content: one page (or more) per copy."""
    pdf = FPDF(format="A4")
    pdf.set_title(content["title"])
    pdf.set_creator(content["municipality"])
    pdf.add_font("serif", fname=str(serif_path()))
    pdf.set_auto_page_break(auto=True, margin=15)
    for number in range(1, int(content["copies"]) + 1):
        _copy(pdf, content, number)
    return bytes(pdf.output())
