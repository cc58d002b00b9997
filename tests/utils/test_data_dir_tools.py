"""utils/utt2spk_to_spk2utt.sh, utils/split_scp.sh and utils/run_local.sh."""

from cald_asr.data.kaldi_dir import utt2spk_to_spk2utt

UTT2SPK = "".join(
    f"{s}-{i:03d} {s}\n" for s in ["Bob", "alice", "bob", "carol"] for i in range(3)
)  # already in C order: upper case sorts before lower case


def test_spk2utt_inverts_utt2spk_in_c_order(run_bash, tmp_path):
    (tmp_path / "utt2spk").write_text(UTT2SPK)
    r = run_bash(f"utils/utt2spk_to_spk2utt.sh {tmp_path}/utt2spk")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["Bob", "alice", "bob", "carol"]
    assert lines[2] == "bob bob-000 bob-001 bob-002"
    # the shell tool and the Python helper agree
    py = utt2spk_to_spk2utt(dict(line.split() for line in UTT2SPK.splitlines()))
    assert lines == [f"{k} {v}" for k, v in py.items()]


def test_spk2utt_rejects_malformed_line_with_line_number(run_bash, tmp_path):
    (tmp_path / "utt2spk").write_text("a-1 a\na-2\n")
    r = run_bash(f"utils/utt2spk_to_spk2utt.sh {tmp_path}/utt2spk")
    assert r.returncode != 0
    assert f"{tmp_path}/utt2spk:2" in r.stderr


def _parts(tmp_path, n):
    return [tmp_path / f"split{n}" / f"wav.{i}.scp" for i in range(1, n + 1)]


def test_split_scp_covers_every_line_once_in_balanced_contiguous_parts(run_bash, tmp_path):
    lines = [f"utt{i:04d} /x/{i}.wav" for i in range(103)]
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    outs = _parts(tmp_path, 4)
    r = run_bash(f"utils/split_scp.sh {tmp_path}/wav.scp " + " ".join(map(str, outs)))
    assert r.returncode == 0, r.stderr
    got = [o.read_text().splitlines() for o in outs]
    assert sorted(len(g) for g in got) == [25, 26, 26, 26]
    assert sum(got, []) == lines  # contiguous and in order


def test_split_scp_keeps_speakers_whole(run_bash, tmp_path):
    (tmp_path / "utt2spk").write_text(UTT2SPK)
    scp = "".join(f"{line.split()[0]} /x/{line.split()[0]}.wav\n" for line in UTT2SPK.splitlines())
    (tmp_path / "wav.scp").write_text(scp)
    outs = _parts(tmp_path, 2)
    r = run_bash(f"utils/split_scp.sh --utt2spk {tmp_path}/utt2spk {tmp_path}/wav.scp " + " ".join(map(str, outs)))
    assert r.returncode == 0, r.stderr
    spk_sets = [{line.split()[0].split("-")[0] for line in o.read_text().splitlines()} for o in outs]
    assert spk_sets == [{"Bob", "alice"}, {"bob", "carol"}]


def test_split_scp_refuses_more_parts_than_lines(run_bash, tmp_path):
    (tmp_path / "wav.scp").write_text("a x\nb y\n")
    outs = _parts(tmp_path, 3)
    r = run_bash(f"utils/split_scp.sh {tmp_path}/wav.scp " + " ".join(map(str, outs)))
    assert r.returncode != 0
    assert "cannot split into 3" in r.stderr


def test_run_local_runs_job_array_and_reports_failures(run_bash, tmp_path):
    r = run_bash(f"utils/run_local.sh JOB=1:3 {tmp_path}/log/j.JOB.log bash -c 'echo out-JOB; exit $((JOB == 2))'")
    assert r.returncode != 0
    assert "j.2.log" in r.stderr and "1 / 3 jobs failed" in r.stderr
    for j in (1, 2, 3):
        text = (tmp_path / "log" / f"j.{j}.log").read_text()
        assert f"out-{j}" in text
        assert f"ended (code {int(j == 2)})" in text


def test_run_local_single_job(run_bash, tmp_path):
    r = run_bash(f"utils/run_local.sh {tmp_path}/one.log echo hello")
    assert r.returncode == 0, r.stderr
    assert "hello" in (tmp_path / "one.log").read_text()
