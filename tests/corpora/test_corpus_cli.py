"""The command line every corpus module shares (cald_asr/corpora/cli.py): each module's own options, and a
problem in the corpus' files reported as one `error:` line naming the file, exit status 1, nothing written."""

import pytest

from cald_asr.corpora import an4, folder, fsdd, movie_reviews, sst2, yesno

OPTIONS = {
    an4: ["--seed"],
    folder: ["--sets", "--dev_from", "--dev_speakers", "--dev_share", "--seed"],
    fsdd: ["--audio_dir", "--seed", "--speakers"],
    movie_reviews: ["--seed"],
    sst2: ["--train_size", "--seed"],
    yesno: [],
}
# what each module looks for first in its corpus dir
FIRST_FILE = {
    an4: "etc/an4_train.transcription",
    folder: "train",
    fsdd: "recordings",
    movie_reviews: "neg",
    sst2: "train.tsv",
    yesno: "waves_yesno",
}
MODULES = pytest.mark.parametrize("module", list(OPTIONS), ids=lambda m: m.__name__.rsplit(".", 1)[1])


@MODULES
def test_help_lists_the_module_s_options(module, capsys):
    with pytest.raises(SystemExit) as e:
        module.main(["--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "[-h] --corpus_dir CORPUS_DIR --data_dir DATA_DIR" in out
    assert " ".join(module.__doc__.split("\n\n")[0].split()) in out  # the docstring's first paragraph
    for option in ["--corpus-dir", "--data-dir"] + OPTIONS[module]:
        assert f" {option}" in out, option


@MODULES
def test_a_missing_corpus_is_one_error_line(module, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    assert module.main(["--corpus_dir", str(corpus), "--data_dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {corpus / FIRST_FILE[module]}: ") and err.count("\n") == 1
    assert not (tmp_path / "data").exists()
