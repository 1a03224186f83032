"""XMP sidecars both ways (issue #18): export, a round trip, a digiKam-layout sidecar, newer
changes here winning, hostile sidecars; the images themselves never change."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from builders import png
from conftest import Cli

# As digiKam writes it (digiKam's XMP sidecar layout: digiKam:TagsList, lr:hierarchicalSubject,
# dc:subject, xmp:Rating, as documented in the digiKam handbook's metadata section).
DIGIKAM = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmp:Rating="4">
   <digiKam:TagsList><rdf:Seq><rdf:li>Places/Harbour</rdf:li><rdf:li>keeper</rdf:li></rdf:Seq></digiKam:TagsList>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>Places|Harbour</rdf:li><rdf:li>keeper</rdf:li></rdf:Bag></lr:hierarchicalSubject>
   <dc:subject><rdf:Bag><rdf:li>Harbour</rdf:li><rdf:li>keeper</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".xmp"
    }


@pytest.mark.sqlite_only("two libraries in one test; the suite gives each test one database")
def test_export_and_import_round_trip(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    png(root / "a.png", {"parameters": "a red fox & <friends>\nSteps: 5, Seed: 1, Size: 64x64"})
    png(root / "sub" / "b.png", {"parameters": "a blue whale\nSteps: 5, Seed: 2, Size: 64x64"})
    cli("add", str(root))
    before = _digest(root)
    cli("tag", "add", "keeper", "seed:1")
    cli("tag", "add", "colour:rust", "seed:1")
    cli("rate", "4", "seed:1")
    assert "Wrote 2 XMP sidecar(s)" in cli("export", "--xmp").stdout
    text = (root / "a.png.xmp").read_text(encoding="utf-8")
    assert 'xmp:Rating="4"' in text and "<rdf:li>colour|rust</rdf:li>" in text
    assert "a red fox &amp; &lt;friends&gt;" in text  # the prompt, escaped
    mirror = tmp_path / "mirror"
    cli("export", "--xmp", "seed:2", "--to", str(mirror))
    assert (mirror / "pics" / "sub" / "b.png.xmp").is_file()
    assert _digest(root) == before  # the images are untouched
    # another library reads them back
    other = Cli(tmp_path / "lib2")
    other("add", str(root))
    report = other.json("import", "--xmp", "--json")
    assert (report["sidecars"], report["images_changed"], report["conflicts"]) == (2, 1, [])
    [fox] = other.jsonl("export", "tag:keeper")
    assert fox["rating"] == 4 and "colour:rust" in fox["tags"]
    again = other.json("import", "--xmp", "--json")
    assert again["images_changed"] == 0  # nothing new to apply


def test_a_digikam_sidecar_and_newer_changes_here(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    png(root / "harbour.png", {"parameters": "a harbour\nSteps: 5, Seed: 7, Size: 64x64"})
    png(root / "lr.png", {"parameters": "a lighthouse\nSteps: 5, Seed: 8, Size: 64x64"})
    cli("add", str(root))
    (root / "harbour.png.xmp").write_text(DIGIKAM, encoding="utf-8")
    lightroom = DIGIKAM.replace('xmp:Rating="4"', 'xmp:Rating="2"').replace("keeper", "lr-tag")
    (root / "lr.xmp").write_text(lightroom, encoding="utf-8")  # Lightroom's NAME.xmp
    old = time.time() - 3600
    os.utime(root / "lr.xmp", (old, old))
    cli("rate", "5", "seed:8")  # a change here, newer than the Lightroom sidecar
    report = cli.json("import", "--xmp", "--json")
    [harbour] = cli.jsonl("export", "seed:7")
    assert harbour["rating"] == 4 and {"Places:Harbour", "keeper"} <= set(harbour["tags"])
    assert "Harbour" not in harbour["tags"]  # the leaf of a hierarchical tag, not a second tag
    [lr] = cli.jsonl("export", "seed:8")
    assert lr["rating"] == 5 and "lr-tag" not in lr["tags"]
    assert len(report["conflicts"]) == 1 and "kept ours" in report["conflicts"][0]


def test_hostile_sidecars_are_reported_and_change_nothing(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    png(root / "a.png", {"parameters": "a cat\nSteps: 5, Seed: 1, Size: 64x64"})
    cli("add", str(root))
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><x>&b;</x>'
    (root / "a.png.xmp").write_text(bomb, encoding="utf-8")
    (root / "b.png.xmp").write_text("<not xml", encoding="utf-8")
    (root / "orphan.png.xmp").write_text(DIGIKAM, encoding="utf-8")
    report = cli.json("import", "--xmp", "--json")
    assert len(report["errors"]) == 2 and report["unmatched"] == [str(root / "orphan.png.xmp")]
    assert report["images_changed"] == 0
    assert cli("import", expect=2).stderr
    assert "no such folder" in cli("import", "--xmp", str(tmp_path / "nowhere"), expect=2).stderr
