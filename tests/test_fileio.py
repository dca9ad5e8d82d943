"""fileio: atomic writes that lose nothing, and text reading that names the file and byte of bad UTF-8."""

import os

import pytest

from scratchlm.fileio import atomic_write, decode_utf8, read_text, write_json


def test_atomic_write_replaces_the_file_only_on_success(tmp_path):
    target = tmp_path / "run.json"
    write_json(target, {"good": 1})
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w", encoding="utf-8") as f:
            f.write("half a fi")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]   # no temporary file left behind


def test_next_write_removes_temporary_files_left_by_a_killed_write(tmp_path):
    target = tmp_path / "run.npz"
    stale = [tmp_path / ".run.npz.abc123.tmp", tmp_path / ".run.npz.zz_9.tmp"]
    other = tmp_path / ".other.npz.abc123.tmp"           # another file's temporary: not ours to delete
    for p in stale + [other]:
        p.write_bytes(b"partial")
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert not any(p.exists() for p in stale) and other.exists()
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"


def test_writing_into_a_missing_folder_names_the_target_not_a_temporary_file(tmp_path):
    target = tmp_path / "no_such_folder" / "model.npz"
    with pytest.raises(FileNotFoundError) as e:
        with atomic_write(target) as f:
            f.write(b"x")
    assert str(target) in str(e.value) and ".tmp" not in str(e.value)


def test_read_text_names_the_file_and_byte_offset_of_invalid_utf8(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("naïve\n".encode("utf-8") + "café".encode("latin-1"))
    with pytest.raises(ValueError) as e:
        read_text(p)
    message = str(e.value)
    assert str(p) in message and "offset 10" in message and "0xe9" in message


def test_read_text_reads_utf8_with_universal_newlines(tmp_path):
    p = tmp_path / "ok.txt"
    p.write_bytes("诗经\r\nline two\rthree\n".encode("utf-8"))
    assert read_text(p) == p.read_text(encoding="utf-8") == "诗经\nline two\nthree\n"


def test_decode_utf8_names_what_it_was_given():
    assert decode_utf8("ok".encode(), "x.json") == "ok"
    with pytest.raises(ValueError, match=r"tok\.json: not UTF-8 text: byte 0xff at offset 2"):
        decode_utf8(b"ab\xffcd", "tok.json")
