"""Faults survived: a killed `convert`, a failed `--overwrite`, a full output folder; nothing lost, nothing half-written.

Each test injects the fault for real (SIGKILL of a running conversion, an OSError raised at the write) and then
checks that the user's data is intact, that no partial output looks complete, and that a rerun finishes the job.
Tests run as root, where chmod does not stop a write, so a full disk is an ENOSPC raised at the writer.
"""
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from label_volumes import kidney_with_tumor, write_volume
from nnunet_ppm.atomic_io import atomic_output, write_text_atomic
from nnunet_ppm.cli import main
from nnunet_ppm.dataset_conversion import convert
from nnunet_ppm.dataset_conversion.convert import convert_dataset
from nnunet_ppm.dataset_conversion.output_folder import remove_abandoned_staging, staged_folder
from nnunet_ppm.dataset_conversion.synthesize import synthesize
from synthetic_postprocessing_cases import small_case, write_predict_folder

NUM_CASES = 4
DATASET = "Dataset520_KidneyTumor"

# `nnunet_ppm convert` with a slow disk (a pause after each written image), so that the kill lands mid-write
SLOW_CONVERT = """
import sys, time
from nnunet_ppm.dataset_conversion import convert
write_image = convert.write_image
def slow_write_image(image, path):
    write_image(image, path)
    time.sleep(0.5)
convert.write_image = slow_write_image
from nnunet_ppm.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Four tiny synthetic patients in the paper's ROI layout (read-only for the tests)."""
    return synthesize(tmp_path_factory.mktemp("faults") / "src", num_cases=NUM_CASES, seed=3, layout="roi",
                      progress=False)


def checksums(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def hidden_entries(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def enospc_after(calls: int, write, path_index: int):
    """`write` that works `calls` times, then writes half a file (at its argument `path_index`) and fails
    as on a full disk."""
    count = {"n": 0}

    def failing(*args, **kwargs):
        count["n"] += 1
        if count["n"] <= calls:
            return write(*args, **kwargs)
        path = Path(args[path_index])
        path.write_bytes(b"\x1f\x8b half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return failing


def test_convert_killed_mid_write_leaves_no_dataset_and_the_rerun_cleans_up(source, tmp_path):
    before = checksums(source)
    raw = tmp_path / "raw"
    process = subprocess.Popen([sys.executable, "-c", SLOW_CONVERT, "convert", "roi", str(source), "-d", "520",
                                "--raw-dir", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    written = []
    while time.monotonic() < deadline and process.poll() is None and not written:
        written = list(raw.glob(f".{DATASET}.partial-*/imagesTr/*.nii.gz")) if raw.is_dir() else []
        time.sleep(0.02)
    assert written, f"the conversion never started writing (exit code {process.poll()})"
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, stderr.decode(errors="replace")[-2000:]

    assert not (raw / DATASET).exists(), "a killed conversion must not leave a dataset under the real name"
    left = list(raw.glob(f".{DATASET}.partial-*"))
    assert len(left) == 1 and list(left[0].rglob("*.nii.gz")), "the kill landed mid-write"
    assert len(list(raw.glob(f".{DATASET}.staging-*.lock"))) == 1

    folder = convert_dataset(source, 520, raw_dir=raw, progress=False)  # no overwrite needed
    assert sorted(p.name for p in raw.iterdir()) == [DATASET], "the killed run's staging folder is cleaned up"
    assert len(list((folder / "labelsTr").iterdir())) == NUM_CASES
    assert json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == NUM_CASES
    uninterrupted = convert_dataset(source, 520, raw_dir=tmp_path / "raw_uninterrupted", progress=False)
    assert checksums(folder) == checksums(uninterrupted)
    assert checksums(source) == before, "source untouched"


def test_cleanup_never_touches_a_live_run_or_folders_that_are_not_ours(tmp_path):
    target = tmp_path / "Dataset521_Mine"
    foreign = [tmp_path / f".{target.name}.partial-notours", tmp_path / f".{target.name}.partial-123-abcdef",
               tmp_path / f".{target.name}x.partial-1-abcdef"]  # no lock file / another name
    for folder in foreign:
        folder.mkdir()
        (folder / "keep.txt").write_text("user data")
    (tmp_path / f".{target.name}.staging-1-abcdef.lock.bak").write_text("not a lock file of ours")
    with pytest.raises(FileExistsError, match="--overwrite"):
        with staged_folder(target) as live:
            (live / "half.txt").write_text("being written")
            assert remove_abandoned_staging(target) == []
            with staged_folder(target) as other:  # a concurrent run for the same name leaves the live one alone
                assert (live / "half.txt").read_text() == "being written"
                (other / "done.txt").write_text("second run")
            assert (live / "half.txt").read_text() == "being written"
    # the run that finishes last refuses to replace what the other one wrote, and removes its own staging
    assert sorted(p.name for p in target.iterdir()) == ["done.txt"]
    assert sorted(hidden_entries(tmp_path)) == sorted([f.name for f in foreign]
                                                      + [f".{target.name}.staging-1-abcdef.lock.bak"])
    assert all((folder / "keep.txt").read_text() == "user data" for folder in foreign)


def test_a_killed_overwrite_run_gets_the_previous_folder_back(tmp_path):
    """SIGKILL between moving the old folder away and renaming the new one into place, then the next run."""
    target = tmp_path / "Dataset522_Mine"
    target.mkdir()
    (target / "dataset.json").write_text("previous")
    script = (f"import os, signal, pathlib\n"
              f"from nnunet_ppm.dataset_conversion import output_folder\n"
              f"rename = pathlib.Path.rename\n"
              f"def killed_after_retiring(self, to):\n"
              f"    rename(self, to)\n"
              f"    if '.replaced-' in str(to): os.kill(os.getpid(), signal.SIGKILL)\n"
              f"pathlib.Path.rename = killed_after_retiring\n"
              f"with output_folder.staged_folder(pathlib.Path({str(target)!r}), overwrite=True) as s:\n"
              f"    (s / 'dataset.json').write_text('new')\n")
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert finished.returncode == -signal.SIGKILL, finished.stderr.decode(errors="replace")[-2000:]
    assert not target.exists() and list(tmp_path.glob(f".{target.name}.replaced-*"))

    with pytest.raises(FileExistsError, match="--overwrite"):  # the old folder is back, and protected again
        with staged_folder(target):
            pass
    assert (target / "dataset.json").read_text() == "previous"
    assert hidden_entries(tmp_path) == []


def test_failed_overwrite_keeps_the_previous_dataset(source, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    folder = convert_dataset(source, 523, raw_dir=raw, progress=False)
    previous = checksums(folder)
    monkeypatch.setattr(convert, "write_image", enospc_after(3, convert.write_image, path_index=1))
    with pytest.raises(OSError, match="No space left on device") as error:
        convert_dataset(source, 523, raw_dir=raw, overwrite=True, progress=False)
    assert error.value.filename.endswith(".nii.gz")
    assert checksums(folder) == previous, "the previous dataset is intact"
    assert hidden_entries(raw) == [], "no staging folder left"


def test_failed_final_rename_puts_the_previous_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "Dataset524_Mine"
    target.mkdir()
    (target / "dataset.json").write_text("previous")
    rename = Path.rename

    def failing_rename(self, to):
        if ".partial-" in self.name:
            raise OSError(errno.EIO, "input/output error", str(self))
        return rename(self, to)
    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="input/output error"):
        with staged_folder(target, overwrite=True) as staging:
            (staging / "dataset.json").write_text("new")
    assert (target / "dataset.json").read_text() == "previous"
    assert hidden_entries(tmp_path) == []


def test_atomic_output_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old, complete")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_output(path) as temporary:
            temporary.write_text("new, half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old, complete"
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "new.json") as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_full_disk_names_the_final_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "write_text", enospc_after(0, Path.write_text, path_index=0))
    with pytest.raises(OSError) as error:
        write_text_atomic(tmp_path / "summary.json", "{}")
    assert error.value.errno == errno.ENOSPC and f"cannot write {tmp_path / 'summary.json'}" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_convert_on_a_full_disk_is_one_clear_error_and_leaves_nothing(source, tmp_path, monkeypatch, capsys):
    before = checksums(source)
    monkeypatch.setattr(convert, "write_image", enospc_after(1, convert.write_image, path_index=1))
    assert main(["convert", "roi", str(source), "-d", "525", "--raw-dir", str(tmp_path)]) == 1
    message = capsys.readouterr().err
    assert "nnunet_ppm convert: [Errno 28] No space left on device" in message and ".nii.gz" in message
    assert list(tmp_path.iterdir()) == []
    assert checksums(source) == before


def test_evaluate_on_a_full_disk_names_the_file_and_leaves_no_summary(tmp_path, monkeypatch, capsys):
    for folder in ("ref", "pred"):
        write_volume(tmp_path / folder / "case_a.nii.gz", kidney_with_tumor(), (2.0, 0.8, 0.8))
    write_text = Path.write_text

    def full_at_summary(self, text, *args, **kwargs):
        if self.name.endswith("summary.json"):
            return enospc_after(0, write_text, path_index=0)(self, text)
        return write_text(self, text, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", full_at_summary)
    assert main(["evaluate", "-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-o",
                 str(tmp_path / "out"), "-np", "1"]) == 1
    assert f"cannot write {tmp_path / 'out' / 'summary.json'}: No space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics_per_case.csv"]


def test_postprocess_on_a_full_disk_names_the_file_and_leaves_no_label_file(tmp_path, monkeypatch, capsys):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    _, ct, probabilities, spacing = small_case()
    write_predict_folder(str(tmp_path / "pred"), str(tmp_path / "raw"), {"kid_001": (ct, probabilities)}, spacing)
    before = checksums(tmp_path / "pred")
    monkeypatch.setattr(SimpleITKIO, "write_seg", enospc_after(0, SimpleITKIO.write_seg, path_index=2))
    assert main(["postprocess", "-i", str(tmp_path / "pred"), "-r", str(tmp_path / "raw"), "-o", str(tmp_path / "out"),
                 "-np", "1", "--disable_progress_bar", "--no-crf"]) == 1
    assert f"cannot write {tmp_path / 'out' / 'kid_001.nii.gz'}: No space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dataset.json", "plans.json"]
    assert checksums(tmp_path / "pred") == before
    assert np.array_equal(probabilities, np.load(tmp_path / "pred" / "kid_001.npz")["probabilities"])
