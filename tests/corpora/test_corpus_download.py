"""Corpus origins: choosing the shared copy, fetching from local zip archives and git repositories (no network)."""

import shutil
import subprocess
import zipfile

import pytest

from cald_asr.corpora import download
from cald_asr.corpora.data_set import CorpusError
from cald_asr.corpora.download import Origin


def toy_origin(zip_url, git_url=None, minimum=3):
    return {"toy": Origin(zip_url, "recordings", "recordings", (("recordings/*.wav", minimum),), "test", git_url)}


def make_archive(path, n_files=3, top="toy-repo-HEAD"):
    files = {f"recordings/{i}_x_0.wav": f"audio {i}".encode() for i in range(n_files)}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}/README.md", b"readme")
        zf.writestr(f"{top}/other/1_x_0.wav", b"not wanted")
        for name, data in files.items():
            zf.writestr(f"{top}/{name}", data)
    return files


def test_every_origin_is_complete_where_shared(fsdd_dir):
    shared = fsdd_dir.parent
    assert set(download.ORIGINS) == {"fsdd", "an4_mfcc", "yesno", "sst2", "movie_reviews", "sentence_polarity"}
    for name, origin in download.ORIGINS.items():
        if (shared / name).is_dir():
            assert origin.missing(shared / name) == [], name
            assert download.resolve_corpus_dir(name, shared / name, cache_dir="/nonexistent") == shared / name


def test_unknown_name(tmp_path, capsys):
    with pytest.raises(CorpusError, match="unknown corpus 'timit'; known: an4_mfcc, fsdd"):
        download.fetch_corpus("timit", tmp_path)
    assert download.main(["timit", str(tmp_path)]) == 1
    assert "unknown corpus" in capsys.readouterr().err


def test_fetch_from_zip_keeps_only_the_folder(tmp_path):
    files = make_archive(tmp_path / "a.zip")
    origins = toy_origin((tmp_path / "a.zip").as_uri())
    got = download.resolve_corpus_dir("toy", tmp_path / "shared" / "toy", tmp_path / "cache", origins)
    assert got == tmp_path / "cache" / "toy"
    assert {str(p.relative_to(got)) for p in got.rglob("*") if p.is_file()} == set(files)
    assert all((got / name).read_bytes() == data for name, data in files.items())
    # complete now: the archive is not needed again
    (tmp_path / "a.zip").unlink()
    assert download.resolve_corpus_dir("toy", None, tmp_path / "cache", origins) == got
    assert list((tmp_path / "cache").iterdir()) == [got]


def test_incomplete_fetch_leaves_nothing(tmp_path):
    make_archive(tmp_path / "a.zip", n_files=2)
    with pytest.raises(CorpusError, match=r"lacks recordings/\*.wav \(2 of 3\)"):
        download.fetch_corpus("toy", tmp_path / "cache" / "toy", toy_origin((tmp_path / "a.zip").as_uri()))
    assert list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(CorpusError, match="download failed"):
        download.fetch_corpus("toy", tmp_path / "cache" / "toy", toy_origin((tmp_path / "absent.zip").as_uri()))


def test_partial_destination_is_not_overwritten(tmp_path):
    make_archive(tmp_path / "a.zip")
    dest = tmp_path / "toy"
    (dest / "recordings").mkdir(parents=True)
    (dest / "recordings" / "0_x_0.wav").write_bytes(b"mine")
    with pytest.raises(CorpusError, match="exists but is not a complete 'toy' copy"):
        download.fetch_corpus("toy", dest, toy_origin((tmp_path / "a.zip").as_uri()))
    assert (dest / "recordings" / "0_x_0.wav").read_bytes() == b"mine"


def test_zip_without_the_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr("repo-HEAD/elsewhere/0_x_0.wav", b"x")
    with pytest.raises(CorpusError, match="no folder 'recordings' in the archive"):
        download.extract_folder(tmp_path / "b.zip", "recordings", tmp_path / "out")


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_fetch_with_sparse_git_clone(tmp_path):
    repo = tmp_path / "repo"
    (repo / "recordings").mkdir(parents=True)
    (repo / "big").mkdir()
    for i in range(3):
        (repo / "recordings" / f"{i}_x_0.wav").write_bytes(f"audio {i}".encode())
    (repo / "big" / "blob.bin").write_bytes(b"not wanted")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "data"]):
        subprocess.run(git + cmd, check=True, capture_output=True)
    # the zip URL is unusable, so success proves the git path was taken
    origins = toy_origin((tmp_path / "absent.zip").as_uri(), git_url=repo.as_uri())
    got = download.fetch_corpus("toy", tmp_path / "cache" / "toy", origins)
    assert sorted(p.name for p in (got / "recordings").iterdir()) == ["0_x_0.wav", "1_x_0.wav", "2_x_0.wav"]
    assert not (got / "big").exists() and not (got / "recordings" / ".git").exists()
