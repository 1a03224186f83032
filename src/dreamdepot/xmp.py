"""XMP sidecars, both ways: tags, rating, favourite and prompt for photo tools (digiKam,
Lightroom, darktable), and their tags and ratings back. The user's image files are never
touched: sidecars are separate files.

Written: ``NAME.EXT.xmp`` beside the image (darktable's and digiKam's default naming) or
under ``--to FOLDER``, mirroring each registered folder. Tags go to ``dc:subject`` (leaf
names) and ``lr:hierarchicalSubject`` (``colour:red`` as ``colour|red``); the rating to
``xmp:Rating``; the favourite to ``xmp:Label="Favorite"``; the prompt to ``dc:description``.

Read: ``NAME.EXT.xmp`` or ``NAME.xmp`` (Lightroom), hierarchical tags from
``lr:hierarchicalSubject`` or ``digiKam:TagsList`` (``a|b`` / ``a/b`` -> ``a:b``), other
``dc:subject`` entries as they are, ``xmp:Rating`` (0-5; -1 "rejected" is left alone) and
``xmp:Label``. Imported tags are user tags. A sidecar older than the user's last change to
an image here (``images.user_changed_at``) that would change it is a conflict: reported,
not applied.
"""

from __future__ import annotations

import sqlite3
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from dreamdepot.catalog import tags as catalog_tags
from dreamdepot.catalog.images import iter_all
from dreamdepot.catalog.paths import from_db
from dreamdepot.media.writers import write_atomic

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
}
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
FAVORITE_LABEL = "Favorite"


@dataclass
class Sidecar:
    tags: list[str] = field(default_factory=list)
    rating: int | None = None
    favorite: bool | None = None
    description: str | None = None


def sidecar_xml(s: Sidecar) -> str:
    """The XMP packet for one image."""
    attrs = ""
    if s.rating is not None:
        attrs += f" xmp:Rating={quoteattr(str(s.rating))}"
    if s.favorite:
        attrs += f" xmp:Label={quoteattr(FAVORITE_LABEL)}"
    items = "".join(f"<rdf:li>{escape(_leaf(t))}</rdf:li>" for t in s.tags)
    hier = "".join(f"<rdf:li>{escape(t.replace(':', '|'))}</rdf:li>" for t in s.tags)
    desc = (
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(s.description)}'
        "</rdf:li></rdf:Alt></dc:description>"
        if s.description
        else ""
    )
    ns = " ".join(f"xmlns:{k}={quoteattr(v)}" for k, v in NS.items() if k not in ("x", "rdf"))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Dream Depot">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" {ns}{attrs}>\n'
        f"   <dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>\n"
        f"   <lr:hierarchicalSubject><rdf:Bag>{hier}</rdf:Bag></lr:hierarchicalSubject>\n"
        f"   {desc}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>\n'
    )


def _leaf(tag: str) -> str:
    return tag.rsplit(":", 1)[-1] if ":" in tag else tag


def parse_sidecar(data: bytes) -> Sidecar:
    """Read tags, rating, label and description; raises ValueError on a file that is not
    XMP (or is larger than any sidecar needs to be)."""
    if len(data) > MAX_SIDECAR_BYTES:
        raise ValueError(f"larger than {MAX_SIDECAR_BYTES // 1024 // 1024} MiB")
    if b"<!ENTITY" in data:
        raise ValueError("entity declarations are not allowed in a sidecar")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    out = Sidecar()
    hierarchical: list[str] = []
    plain: list[str] = []
    for desc in root.iter(f"{{{NS['rdf']}}}Description"):
        rating = desc.get(f"{{{NS['xmp']}}}Rating") or _text(desc, "xmp", "Rating")
        if rating is not None:
            try:
                value = int(float(rating))
                out.rating = value if 0 <= value <= 5 else out.rating
            except ValueError:
                pass
        label = desc.get(f"{{{NS['xmp']}}}Label") or _text(desc, "xmp", "Label")
        if label is not None:
            out.favorite = label.strip().lower() in ("favorite", "favourite")
        hierarchical += [t.replace("|", ":") for t in _items(desc, "lr", "hierarchicalSubject")]
        hierarchical += [t.replace("/", ":") for t in _items(desc, "digiKam", "TagsList")]
        plain += _items(desc, "dc", "subject")
        for alt in desc.iter(f"{{{NS['dc']}}}description"):
            texts = [li.text or "" for li in alt.iter(f"{{{NS['rdf']}}}li")]
            out.description = texts[0] if texts else out.description
    leaves = {_leaf(t).lower() for t in hierarchical}
    seen: list[str] = []
    for t in [*hierarchical, *(p for p in plain if p.lower() not in leaves)]:
        t = " ".join(t.split())
        if t and t.lower() not in {s.lower() for s in seen}:
            seen.append(t)
    out.tags = seen
    return out


def _items(desc: ET.Element, ns: str, name: str) -> list[str]:
    out: list[str] = []
    for container in desc.iter(f"{{{NS[ns]}}}{name}"):
        out += [li.text.strip() for li in container.iter(f"{{{NS['rdf']}}}li") if li.text]
    return out


def _text(desc: ET.Element, ns: str, name: str) -> str | None:
    node = desc.find(f"{{{NS[ns]}}}{name}")
    return node.text if node is not None and node.text else None


def sidecar_path(image_path: Path, to: Path | None = None, root: Path | None = None) -> Path:
    """``NAME.EXT.xmp`` beside the image, or the same relative place under ``to``."""
    name = image_path.name + ".xmp"
    if to is None or root is None:
        return image_path.with_name(name)
    return to / root.name / image_path.relative_to(root).with_name(name)


def _files(conn: sqlite3.Connection, image_id: int) -> Iterator[tuple[Path, Path]]:
    for root, rel in conn.execute(
        "SELECT r.path, f.rel_path FROM files f JOIN roots r ON r.id = f.root_id "
        "WHERE f.image_id = ? AND f.state = 'present' ORDER BY f.id",
        (image_id,),
    ):
        yield Path(root), Path(root) / from_db(rel)


def export_xmp(
    conn: sqlite3.Connection, query: str = "", to: Path | None = None, include_auto: bool = False
) -> int:
    """Write a sidecar for every present file of the images ``query`` matches."""
    written = 0
    for item in iter_all(conn, query):
        image_id = item["id"]
        row = conn.execute(
            "SELECT i.rating, i.favorite, p.text FROM images i LEFT JOIN prompts p "
            "ON p.id = i.prompt_id WHERE i.id = ?",
            (image_id,),
        ).fetchone()
        sources = ("user", "auto") if include_auto else ("user",)
        tags = [
            r[0]
            for r in conn.execute(
                "SELECT t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id "
                f"WHERE it.image_id = ? AND it.source IN ({','.join('?' * len(sources))}) "
                "ORDER BY t.name",
                (image_id, *sources),
            )
        ]
        packet = sidecar_xml(Sidecar(tags, row[0], bool(row[1]), row[2])).encode("utf-8")
        for root, path in _files(conn, image_id):
            write_atomic(sidecar_path(path, to, root), packet)
            written += 1
    return written


@dataclass
class ImportReport:
    sidecars: int = 0
    images_changed: int = 0
    tags_added: int = 0
    ratings_set: int = 0
    unmatched: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def import_xmp(conn: sqlite3.Connection, folders: list[Path]) -> ImportReport:
    """Read the sidecars under ``folders`` into user tags, ratings and favourites, inside
    the caller's transaction."""
    report = ImportReport()
    for folder in folders:
        for sidecar in sorted(folder.rglob("*")):
            if sidecar.suffix.lower() != ".xmp" or not sidecar.is_file():
                continue
            report.sidecars += 1
            try:
                data = parse_sidecar(sidecar.read_bytes())
            except (OSError, ValueError) as exc:
                report.errors.append(f"{sidecar}: {exc}")
                continue
            image_id = _image_for(conn, sidecar)
            if image_id is None:
                report.unmatched.append(str(sidecar))
                continue
            _apply(conn, image_id, data, sidecar.stat().st_mtime, str(sidecar), report)
    return report


def _image_for(conn: sqlite3.Connection, sidecar: Path) -> int | None:
    """The image a sidecar describes: NAME.EXT.xmp, else NAME.xmp with any extension."""
    base = sidecar.with_suffix("")
    candidates = [base] if base.suffix else []
    stem = sidecar.with_suffix("")
    for root_id, root in conn.execute("SELECT id, path FROM roots"):
        root_path = Path(root)
        for candidate in candidates:
            try:
                rel = candidate.relative_to(root_path).as_posix()
            except ValueError:
                continue
            row = conn.execute(
                "SELECT image_id FROM files WHERE root_id = ? AND rel_path = ?", (root_id, rel)
            ).fetchone()
            if row:
                return int(row[0])
        try:
            rel_stem = stem.relative_to(root_path).as_posix()
        except ValueError:
            continue
        esc = rel_stem.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        row = conn.execute(
            "SELECT image_id FROM files WHERE root_id = ? AND rel_path LIKE ? ESCAPE '\\' "
            "AND rel_path NOT LIKE ? ESCAPE '\\' ORDER BY id LIMIT 1",
            (root_id, esc + ".%", esc + ".%/%"),
        ).fetchone()
        if row:
            return int(row[0])
    return None


def _apply(
    conn: sqlite3.Connection,
    image_id: int,
    data: Sidecar,
    mtime: float,
    name: str,
    report: ImportReport,
) -> None:
    rating, favorite, changed_at = conn.execute(
        "SELECT rating, favorite, user_changed_at FROM images WHERE id = ?", (image_id,)
    ).fetchone()
    have = {
        r[0].lower()
        for r in conn.execute(
            "SELECT t.name FROM image_tags it JOIN tags t ON t.id = it.tag_id "
            "WHERE it.image_id = ? AND it.source = 'user'",
            (image_id,),
        )
    }
    new_tags = [t for t in data.tags if t.lower() not in have]
    new_rating = data.rating if data.rating is not None and data.rating != (rating or 0) else None
    new_favorite = (
        data.favorite if data.favorite is not None and data.favorite != bool(favorite) else None
    )
    if not new_tags and new_rating is None and new_favorite is None:
        return
    if changed_at is not None and changed_at > mtime:
        what = ", ".join(
            [*(f"tag {t!r}" for t in new_tags)]
            + ([f"rating {new_rating}"] if new_rating is not None else [])
            + ([f"favourite {new_favorite}"] if new_favorite is not None else [])
        )
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(changed_at))
        report.conflicts.append(
            f"{name}: image {image_id} changed here at {when}, after the sidecar; "
            f"kept ours ({what})"
        )
        return
    for t in new_tags:
        report.tags_added += catalog_tags.add_tag(conn, t, [image_id])
    if new_rating is not None:
        conn.execute("UPDATE images SET rating = ? WHERE id = ?", (new_rating or None, image_id))
        report.ratings_set += 1
    if new_favorite is not None:
        conn.execute("UPDATE images SET favorite = ? WHERE id = ?", (int(new_favorite), image_id))
    report.images_changed += 1
