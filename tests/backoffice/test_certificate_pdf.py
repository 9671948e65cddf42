"""The certificate renderer (F7): every character a register records prints; the cached font follows its file."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

from pylopdf_fonts_jp import sans_path, serif_path

from backoffice.services.certificate_pdf import certificate_pdf
from core.registertext import unrecordable
from tests.backoffice.test_certificates import pdf_text

# 異体字 the register records beyond JIS X 0208 (髙, 𠮷 outside the BMP, 﨑 a compatibility ideograph) and
# JIS X 0213 plane-2 characters (𠀋, 𡈽): each must print as itself, not as a blank box.
RARE_NAME = "髙﨑　𠮷𠀋𡈽"


def _content(name: str, address: str = "岩手県花巻市大通一丁目1番1号") -> dict:
    return {"title": "住民票の写し", "kind": "juminhyo", "issueNumber": "032051-2026-0000001",
            "issuedOn": "2026-12-06", "issuedOnText": "令和8年12月6日", "municipality": "花巻市", "mayor": "花巻一郎",
            "copies": 1, "persons": [[["氏名", name], ["住所", address], ["世帯主", name], ["続柄", "世帯主"]]],
            "code": "ABCD-EFGH-JKLM-NPQR", "verifyUrl": "https://portal.example/certificates/verify#ABCDEFGHJKLMNPQR",
            "showsMyNumber": False}


def _font_names(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "fonts.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout


def test_variant_kanji_the_register_records_print_as_themselves(tmp_path):
    assert unrecordable(RARE_NAME) is None  # the register accepts the name, so a certificate must print it
    text = pdf_text(certificate_pdf(_content(RARE_NAME)), tmp_path)
    assert "髙﨑𠮷𠀋𡈽" in text
    assert "岩手県花巻市大通一丁目1番1号" in text and "花巻市長花巻一郎" in text
    assert "この写しは、住民票の原本と相違ないことを証明する。" in text
    assert "照合番号ABCD-EFGH-JKLM-NPQR" in text


def test_each_certificate_embeds_only_its_own_characters_and_rendering_in_threads_mixes_none(tmp_path):
    names = ["宮沢　賢", "髙橋　𠮷郎", "石川　啄木", "新渡戸　稲造"]
    pdfs: dict[str, bytes] = {}

    def render(name: str) -> None:
        pdfs[name] = certificate_pdf(_content(name))

    threads = [threading.Thread(target=render, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in names:
        text = pdf_text(pdfs[name], tmp_path)
        assert name.replace("　", "") in text
        assert all(other.replace("　", "") not in text for other in names if other != name)
    # The embedded font is the document's cut, not the 6 MB font: a few tens of kilobytes.
    assert all(len(pdf) < 200_000 for pdf in pdfs.values())


def test_a_font_file_replaced_on_disk_is_parsed_again_for_the_next_certificate(tmp_path):
    font = tmp_path / "certificate.otf"
    shutil.copyfile(serif_path(), font)
    first = certificate_pdf(_content("宮沢　賢"), font_path=font)
    assert "NotoSerifJP" in _font_names(first, tmp_path)
    shutil.copyfile(sans_path(), font)  # the same path, other contents: a stale parsed font would print serif
    second = certificate_pdf(_content("宮沢　賢"), font_path=font)
    names = _font_names(second, tmp_path)
    assert "NotoSansJP" in names and "NotoSerifJP" not in names
    assert "宮沢賢" in pdf_text(second, tmp_path)


def test_fpdf2_leaves_a_documents_exact_font_whole_and_still_cuts_any_other_font():
    """fpdf2 subsets every font it embeds; a document's font is already exactly its glyphs, another is not."""
    import io

    from fontTools import subset as ftsubset
    from fontTools.ttLib import TTFont

    from backoffice.services.certificate_pdf import EXACT_SUBSET, certificate_font

    def glyphs_after_subset(marked: bool) -> int:
        font = TTFont(io.BytesIO(certificate_font().subset(["宮沢賢治", "石川啄木"])))
        if marked:
            setattr(font, EXACT_SUBSET, True)
        subsetter = ftsubset.Subsetter(ftsubset.Options(notdef_outline=True))
        subsetter.populate(text="宮沢")  # as if only these two were drawn
        subsetter.subset(font)
        return len(font.getGlyphOrder())

    assert glyphs_after_subset(marked=True) == 9  # .notdef and the eight characters, untouched
    assert glyphs_after_subset(marked=False) == 3  # .notdef, 宮 and 沢: fontTools still cuts an unmarked font
