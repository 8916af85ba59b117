"""Downloads (loopback HTTP and file://), checksums, offline errors and safe extraction."""
from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest

from _data_helpers import RangeHandler, add_tar_member, make_tar, make_zip, serve, sha256
from tlf.data.download import Archive, download, extract, fetch_and_extract
from tlf.errors import TlfError


@pytest.fixture
def payload(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    path = src / "data.bin"
    path.write_bytes(bytes(range(256)) * 4000)  # ~1 MB, more than one read chunk
    return path


def test_http_download_verifies_and_renames(tmp_path, payload):
    cache = tmp_path / "cache"
    with serve(payload.parent) as base:
        out = download(Archive(f"{base}/data.bin", "data.bin", sha256=sha256(payload)), cache)
    assert out == cache / "data.bin" and out.read_bytes() == payload.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["data.bin"]  # no .part left, no record needed


def test_interrupted_download_resumes_with_range_request(tmp_path, payload, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    data = payload.read_bytes()
    (cache / "data.bin.part").write_bytes(data[:300_000])  # what an interrupted attempt left
    monkeypatch.setattr(RangeHandler, "ranges", [])
    with serve(payload.parent, RangeHandler) as base:
        out = download(Archive(f"{base}/data.bin", "data.bin", sha256=sha256(payload)), cache)
    assert RangeHandler.ranges == ["bytes=300000-"]
    assert out.read_bytes() == data and not (cache / "data.bin.part").exists()


def test_partial_file_is_replaced_when_it_cannot_be_resumed(tmp_path, payload, monkeypatch):
    data = payload.read_bytes()
    monkeypatch.setattr(RangeHandler, "ranges", [])
    for handler, stale in ((RangeHandler, b"x" * (len(data) + 5)), (None, b"stale bytes")):
        cache = tmp_path / f"cache-{handler is None}"
        cache.mkdir()
        (cache / "data.bin.part").write_bytes(stale)  # 416 past the end / server ignores Range
        with serve(payload.parent, *(handler,) if handler else ()) as base:
            out = download(Archive(f"{base}/data.bin", "data.bin", sha256=sha256(payload)), cache)
        assert out.read_bytes() == data
    assert RangeHandler.ranges == [f"bytes={len(data) + 5}-"]


def test_file_url_and_md5(tmp_path, payload):
    import hashlib
    md5 = hashlib.md5(payload.read_bytes()).hexdigest()
    out = download(Archive(payload.as_uri(), "data.bin", md5=md5), tmp_path / "cache")
    assert out.read_bytes() == payload.read_bytes()
    with pytest.raises(TlfError, match="expected md5"):
        download(Archive(payload.as_uri(), "data.bin", md5="0" * 32), tmp_path / "cache2")
    assert not (tmp_path / "cache2" / "data.bin").exists()


def test_checksum_mismatch_deletes_the_file_and_says_so(tmp_path, payload):
    wrong = "0" * 64
    with serve(payload.parent) as base, pytest.raises(TlfError) as info:
        download(Archive(f"{base}/data.bin", "data.bin", sha256=wrong), tmp_path / "cache")
    message = str(info.value)
    assert "checksum mismatch" in message and wrong in message and sha256(payload) in message
    assert "deleted" in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_unknown_checksum_is_recorded_and_then_enforced(tmp_path, payload):
    cache = tmp_path / "cache"
    archive = Archive(payload.as_uri(), "data.bin")
    out = download(archive, cache)
    record = cache / "data.bin.sha256"
    assert record.read_text().split()[0] == sha256(payload)
    assert download(archive, cache) == out  # cached copy, checked against the record
    out.write_bytes(b"tampered")
    with pytest.raises(TlfError, match="recorded at first download.*deleted"):
        download(archive, cache)
    assert not out.exists()


def test_network_failure_names_url_and_where_to_put_files(tmp_path, payload):
    with serve(payload.parent) as base:
        url = f"{base}/missing.tgz"
        with pytest.raises(TlfError) as info:
            fetch_and_extract(Archive(url, "missing.tgz"), tmp_path / "cache", "thing")
    message = str(info.value)
    assert url in message and "404" in message
    assert str(tmp_path / "cache" / "missing.tgz") in message and str(tmp_path / "cache" / "thing") in message
    assert "--data-dir" in message
    assert not any((tmp_path / "cache").glob("*.part"))


def test_unreachable_host_and_downloads_off(tmp_path):
    archive = Archive("http://127.0.0.1:9/x.zip", "x.zip")  # discard port: connection refused
    with pytest.raises(TlfError, match="could not download http://127.0.0.1:9/x.zip"):
        download(archive, tmp_path)
    with pytest.raises(TlfError, match="downloads are off.*--data-dir"):
        download(archive, tmp_path, allow_network=False)


def test_fetch_and_extract_tar_strips_single_top_folder(tmp_path):
    (tmp_path / "thing" / "a").mkdir(parents=True)
    (tmp_path / "thing" / "a" / "f.txt").write_text("hi")
    tgz = make_tar(tmp_path / "thing", tmp_path / "thing.tgz")
    out = fetch_and_extract(Archive(tgz.as_uri(), "thing.tgz", sha256=sha256(tgz)), tmp_path / "cache", "thing")
    assert out == tmp_path / "cache" / "thing" and (out / "a" / "f.txt").read_text() == "hi"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".thing.tgz.lock", "thing", "thing.tgz"]  # the lock file stays
    tgz.unlink()  # extracted folder is reused, nothing downloaded again
    assert fetch_and_extract(Archive(tgz.as_uri(), "thing.tgz"), tmp_path / "cache", "thing") == out


def test_zip_extracts(tmp_path):
    (tmp_path / "z" / "d").mkdir(parents=True)
    (tmp_path / "z" / "d" / "f.txt").write_text("zip")
    archive = make_zip(tmp_path / "z", tmp_path / "z.zip")
    out = extract(archive, tmp_path / "out")
    assert (out / "z" / "d" / "f.txt").read_text() == "zip"


@pytest.mark.parametrize("member, info, message", [
    ("../evil.txt", {}, r"\.\."),
    ("ok/../../evil.txt", {}, r"\.\."),
    ("/tmp/evil.txt", {}, "absolute"),
    ("link", {"type": tarfile.SYMTYPE, "linkname": "../../etc/passwd"}, "outside"),
    ("link", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "outside|absolute"),
    ("hard", {"type": tarfile.LNKTYPE, "linkname": "../x"}, "outside"),
    ("dev", {"type": tarfile.CHRTYPE}, "special"),
])
def test_unsafe_tar_members_are_refused(tmp_path, member, info, message):
    archive = tmp_path / "evil.tgz"
    add_tar_member(archive, member, **info)
    target = tmp_path / "sub" / "out"
    with pytest.raises(TlfError, match=message):
        extract(archive, target)
    assert not target.exists() and not (tmp_path / "evil.txt").exists()
    assert [p.name for p in (tmp_path / "sub").iterdir()] == []  # temporary folder removed


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_unsafe_zip_members_are_refused(tmp_path, member):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr(zipfile.ZipInfo(member), "evil")
    with pytest.raises(TlfError, match="refusing to extract"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_download_refuses_archive_with_traversal_end_to_end(tmp_path):
    archive = tmp_path / "bad.tgz"
    add_tar_member(archive, "../escape.txt")
    with serve(tmp_path) as base, pytest.raises(TlfError, match="refusing to extract"):
        fetch_and_extract(Archive(f"{base}/bad.tgz", "bad.tgz", sha256=sha256(archive)), tmp_path / "cache", "bad")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "cache" / "bad").exists()


def test_not_an_archive_and_truncated_archive(tmp_path):
    (tmp_path / "x.tgz").write_bytes(b"plain bytes")
    with pytest.raises(TlfError, match="neither a zip nor a tar"):
        extract(tmp_path / "x.tgz", tmp_path / "out")
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "noise.bin").write_bytes(np.random.default_rng(0).bytes(200_000))
    tgz = make_tar(tmp_path / "big", tmp_path / "big.tgz")
    tgz.write_bytes(tgz.read_bytes()[:100_000])
    with pytest.raises(TlfError, match="cannot extract"):
        extract(tgz, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


def test_links_inside_the_target_are_allowed(tmp_path):
    archive = tmp_path / "ok.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("d/a.txt", b"a"),):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("d/sub/link")
        link.type, link.linkname = tarfile.SYMTYPE, "../a.txt"
        tar.addfile(link)
    out = extract(archive, tmp_path / "out")
    assert (out / "d" / "sub" / "link").read_text() == "a"


def _cve_2025_4517_archive(archive, climb: int) -> None:
    """The layout of CVE-2025-4517: a chain of symlinks to directories whose resolved path
    overflows PATH_MAX (so ``realpath`` stops resolving), then a link that climbs ``climb``
    levels above the extraction folder through it, then a file written through that link."""
    comp, steps, path = "d" * 247, "abcdefghijklmnop", ""
    with tarfile.open(archive, "w") as tar:
        for step in steps:
            folder = tarfile.TarInfo(f"{path}{comp}")
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
            link = tarfile.TarInfo(f"{path}{step}")
            link.type, link.linkname = tarfile.SYMTYPE, comp
            tar.addfile(link)
            path += comp + "/"
        linkpath = "/".join(steps) + "/" + "l" * 254
        back = tarfile.TarInfo(linkpath)
        back.type, back.linkname = tarfile.SYMTYPE, "../" * len(steps)
        tar.addfile(back)
        escape = tarfile.TarInfo("escape")
        escape.type, escape.linkname = tarfile.SYMTYPE, linkpath + "/.." * climb + "/outside"
        tar.addfile(escape)
        payload = tarfile.TarInfo("escape/flag")
        payload.size = 4
        tar.addfile(payload, io.BytesIO(b"pwnd"))


def test_cve_2025_4517_symlink_chain_cannot_escape(tmp_path):
    (tmp_path / "outside").mkdir()
    archive = tmp_path / "chain.tar"
    _cve_2025_4517_archive(archive, climb=2)  # from sub/.out.partial up to tmp_path
    with pytest.raises(TlfError, match="refusing to extract"):
        extract(archive, tmp_path / "sub" / "out")
    assert list((tmp_path / "outside").iterdir()) == []
    assert not (tmp_path / "sub" / "out").exists()


def test_cve_2025_4517_through_fetch_and_extract(tmp_path):
    (tmp_path / "outside").mkdir()
    archive = tmp_path / "chain.tar"
    _cve_2025_4517_archive(archive, climb=2)  # from cache/.chain.extracted/.chain.extracted.partial up
    with pytest.raises(TlfError, match="refusing to extract"):
        fetch_and_extract(Archive(archive.as_uri(), "chain.tar", sha256=sha256(archive)), tmp_path / "cache",
                          "chain")
    assert list((tmp_path / "outside").iterdir()) == []


@pytest.mark.parametrize("links, message", [
    ([("d", tarfile.DIRTYPE, ""), ("s", tarfile.SYMTYPE, "d")], "not a regular file"),  # link to a folder
    ([("s", tarfile.SYMTYPE, "missing.txt")], "not a regular file"),  # dangling
    ([("a.txt", tarfile.REGTYPE, ""), ("s", tarfile.SYMTYPE, "a.txt"), ("s/x", tarfile.REGTYPE, "")],
     "not a folder"),  # writing through a link
    ([("h", tarfile.LNKTYPE, "missing.txt")], "not a regular file"),
    ([("p", tarfile.FIFOTYPE, "")], "special"),
    ([("b", tarfile.BLKTYPE, "")], "special"),
    ([("a.txt", tarfile.REGTYPE, ""), ("a.txt/b", tarfile.REGTYPE, "")], "not a folder"),
])
def test_links_must_resolve_to_a_regular_file_inside(tmp_path, links, message):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        for name, kind, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    with pytest.raises(TlfError, match=message):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_link_chains_and_hard_links_inside_the_target(tmp_path):
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        data = tarfile.TarInfo("d/a.txt")
        data.size = 1
        tar.addfile(data, io.BytesIO(b"a"))
        for name, kind, target in (("d/s1", tarfile.SYMTYPE, "a.txt"), ("s2", tarfile.SYMTYPE, "d/s1"),
                                   ("h", tarfile.LNKTYPE, "d/a.txt"), ("./e/./s3", tarfile.SYMTYPE, "../s2")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    out = extract(archive, tmp_path / "out")
    for name in ("d/s1", "s2", "h", "e/s3"):
        assert (out / name).read_text() == "a"
        assert (out / name).resolve().is_relative_to(out.resolve())
    assert not (out / "h").is_symlink()


def test_fetch_and_extract_stages_the_archive_once(tmp_path, monkeypatch):
    """One temp folder is extracted into and renamed into place (not a folder inside a folder)."""
    from tlf.data import download as module
    (tmp_path / "thing" / "a").mkdir(parents=True)
    (tmp_path / "thing" / "a" / "f.txt").write_text("hi")
    tgz = make_tar(tmp_path / "thing", tmp_path / "thing.tgz")
    made = []
    real = module.temp_folder
    monkeypatch.setattr(module, "temp_folder", lambda target: made.append(target) or real(target))
    out = fetch_and_extract(Archive(tgz.as_uri(), "thing.tgz", sha256=sha256(tgz)), tmp_path / "cache", "thing")
    assert made == [out] and (out / "a" / "f.txt").read_text() == "hi"
    flat = tmp_path / "flat.tgz"  # no top folder named like the dataset: the staging folder itself becomes it
    make_tar(tmp_path / "thing" / "a", flat)
    out = fetch_and_extract(Archive(flat.as_uri(), "flat.tgz", sha256=sha256(flat)), tmp_path / "cache", "flat")
    assert len(made) == 2 and [p.name for p in out.rglob("f.txt")] == ["f.txt"]
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
