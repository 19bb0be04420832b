"""The model registry: status of an empty and a filled folder, offline downloads, layout of downloads."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from gpt_sovits import pretrained as models


def _by_name(rows: list[models.ModelStatus]) -> dict[str, models.ModelStatus]:
    return {r.name: r for r in rows}


def test_pretrained_paths_official_names(tmp_path: Path) -> None:
    v2 = models.pretrained_paths(tmp_path)
    assert v2.s1 == tmp_path / "gsv-v2final-pretrained" / "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"
    assert v2.s2g == tmp_path / "gsv-v2final-pretrained" / "s2G2333k.pth"
    assert v2.s2d == tmp_path / "gsv-v2final-pretrained" / "s2D2333k.pth"
    assert v2.hubert == tmp_path / "chinese-hubert-base"
    assert v2.bert == tmp_path / "chinese-roberta-wwm-ext-large"
    v1 = models.pretrained_paths(tmp_path, "v1")
    assert v1.s1 == tmp_path / "s1bert25hz-2kh-longer-epoch=68e-step=50232.ckpt"
    assert (v1.s2g.name, v1.s2d.name) == ("s2G488k.pth", "s2D488k.pth")
    with pytest.raises(ValueError, match="v3"):
        models.pretrained_paths(tmp_path, "v3")


def test_status_empty_folder(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    import tools.asr

    monkeypatch.setattr(tools.asr, "_in_hf_cache", lambda model: False)  # this machine's cache aside
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # demucs'
    rows = models.model_status(tmp_path)
    assert rows and not any(r.present for r in rows)
    by = _by_name(rows)
    # Every kind the project uses is in the table, with a message naming the folder.
    for name in (
        "gpt-v2",
        "sovits-v2",
        "gpt-v1",
        "chinese-hubert-base",
        "g2pw",
        "faster-whisper-large-v3",
        "demucs-htdemucs",
    ):
        assert name in by, name
        assert str(tmp_path) in by[name].how_to_get, by[name].how_to_get
    assert "lj1995/GPT-SoVITS" in by["gpt-v2"].how_to_get
    assert "Systran/faster-whisper-large-v3" in by["faster-whisper-large-v3"].how_to_get
    assert "adefossez/HTDemucs" in by["demucs-htdemucs"].how_to_get
    # The HuBERT message is the feature loader's own.
    assert "config.json" in by["chinese-hubert-base"].how_to_get


def test_status_tiny_pretrained(tiny_pretrained) -> None:
    by = _by_name(models.model_status(tiny_pretrained.root))
    for name in (
        "gpt-v2",
        "sovits-v2",
        "sovits-d-v2",
        "chinese-hubert-base",
        "chinese-roberta-wwm-ext-large",
    ):
        assert by[name].present, (name, by[name].how_to_get)
        assert by[name].how_to_get == ""
    assert by["gpt-v2"].path == tiny_pretrained.s1
    assert not by["gpt-v1"].present
    assert not by["g2pw"].present


def test_status_incomplete_bert_folder(tmp_path: Path) -> None:
    (tmp_path / "chinese-roberta-wwm-ext-large").mkdir()
    (tmp_path / "chinese-roberta-wwm-ext-large" / "config.json").write_text("{}")
    row = _by_name(models.model_status(tmp_path))["chinese-roberta-wwm-ext-large"]
    assert not row.present
    assert "incomplete" in row.how_to_get


def test_list_cli(tiny_pretrained, capsys) -> None:
    assert models.main(["list", "--model-dir", str(tiny_pretrained.root)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("gpt-v2 "))
    assert "present" in line
    assert "missing" in next(ln for ln in out.splitlines() if ln.startswith("gpt-v1 "))


def test_download_offline_is_quick_and_clear(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    assert models.main(["download", "gpt-v2", "--model-dir", str(tmp_path)]) == 1
    assert time.monotonic() - start < 5
    err = capsys.readouterr().err
    assert "offline" in err
    assert str(tmp_path / "gsv-v2final-pretrained") in err
    assert "https://huggingface.co/lj1995/GPT-SoVITS" in err


def test_download_unreachable_hub_is_quick(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # A port nothing listens on: the probe fails at once instead of waiting for a download timeout.
    monkeypatch.setattr(models, "_hub_endpoint_host", lambda: ("127.0.0.1", 9))
    start = time.monotonic()
    with pytest.raises(models.ModelDownloadError, match="cannot be reached") as info:
        models.download("v2", tmp_path, log=lambda _m: None)
    assert time.monotonic() - start < 5
    assert str(tmp_path / "chinese-hubert-base") in str(info.value)


def test_download_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(models.ModelDownloadError, match="unknown model 'nope'.*gpt-v2"):
        models.download("nope", tmp_path)


def _fake_hub(monkeypatch, calls: list) -> None:
    """hf_hub_download / snapshot_download that write small files where the real ones would."""
    import huggingface_hub

    def fake_file(repo_id, filename, local_dir=None, **kw):
        calls.append(("file", repo_id, filename))
        dest = Path(local_dir) / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        if filename.endswith(".zip"):
            with zipfile.ZipFile(dest, "w") as zf:
                zf.writestr("G2PWModel/g2pW.onnx", b"onnx")
                zf.writestr("G2PWModel/config.py", "x = 1\n")
        else:
            dest.write_bytes(b"weights")
        return str(dest)

    def fake_snapshot(repo_id, allow_patterns=None, local_dir=None, **kw):
        calls.append(("snapshot", repo_id, tuple(allow_patterns or ())))
        for pattern in allow_patterns or ():
            folder = Path(local_dir) / pattern.rstrip("/*")
            folder.mkdir(parents=True, exist_ok=True)
            for name in ("config.json", "pytorch_model.bin", "tokenizer.json"):
                (folder / name).write_text("{}")
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_file)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)


def test_download_places_official_layout(tmp_path: Path, monkeypatch) -> None:
    calls: list = []
    _fake_hub(monkeypatch, calls)
    logs: list[str] = []
    models.download("v2", tmp_path, log=logs.append, check_hub=False)
    paths = models.pretrained_paths(tmp_path)
    for p in (paths.s1, paths.s2g, paths.s2d):
        assert p.read_bytes() == b"weights"
    assert (paths.hubert / "config.json").is_file() and (paths.bert / "tokenizer.json").is_file()
    assert ("file", "lj1995/GPT-SoVITS", "gsv-v2final-pretrained/s2G2333k.pth") in calls
    by = _by_name(models.model_status(tmp_path))
    assert all(by[n].present for n in models.GROUPS["v2"])
    # A second run skips what is present and downloads nothing.
    calls.clear()
    assert models.download("v2", tmp_path, log=logs.append, check_hub=False) == []
    assert calls == []
    assert any("already present" in m for m in logs)


def test_download_g2pw_unzips_into_folder(tmp_path: Path, monkeypatch) -> None:
    _fake_hub(monkeypatch, [])
    models.download("g2pw", tmp_path, log=lambda _m: None, check_hub=False)
    assert (tmp_path / "G2PWModel" / "g2pW.onnx").read_bytes() == b"onnx"
    assert _by_name(models.model_status(tmp_path))["g2pw"].present


def test_download_error_becomes_clear_message(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub

    def broken(*a, **kw):
        raise OSError("connection reset")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", broken)
    with pytest.raises(models.ModelDownloadError, match="connection reset.*Put s2G488k.pth"):
        models.download("sovits-v1", tmp_path, log=lambda _m: None, check_hub=False)


@pytest.mark.parametrize("version", ["v2Pro", "v2ProPlus"])
def test_download_pro_group_places_official_layout(tmp_path: Path, monkeypatch, version: str) -> None:
    """`download v2Pro` fetches s1v3.ckpt, the version's G/D and the SV model (plus HuBERT/BERT) by their
    hub paths into the official layout; the version's table then finds every file present."""
    calls: list = []
    _fake_hub(monkeypatch, calls)
    models.download(version, tmp_path, log=lambda _m: None, check_hub=False)
    paths = models.pretrained_paths(tmp_path, version)
    assert (
        paths.s1 == tmp_path / "s1v3.ckpt" and paths.sv == tmp_path / "sv/pretrained_eres2netv2w24s4ep4.ckpt"
    )
    for p in (paths.s1, paths.s2g, paths.s2d, paths.sv):
        assert p.read_bytes() == b"weights", p
    files = {c[2] for c in calls if c[0] == "file"}
    assert files == {
        "s1v3.ckpt",
        f"v2Pro/s2G{version}.pth",
        f"v2Pro/s2D{version}.pth",
        "sv/pretrained_eres2netv2w24s4ep4.ckpt",
    }
    by = _by_name(models.model_status(tmp_path))
    assert all(by[n].present for n in models.version_models(version).values())
    assert not by["sovits-v2"].present  # nothing of another version


def test_pro_offline_message_names_every_missing_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelDownloadError) as info:
        models.download("v2ProPlus", tmp_path, log=lambda _m: None)
    message = str(info.value)
    for rel in (
        "s1v3.ckpt",
        "v2Pro/s2Gv2ProPlus.pth",
        "v2Pro/s2Dv2ProPlus.pth",
        "sv/pretrained_eres2netv2w24s4ep4.ckpt",
    ):
        assert str(tmp_path / rel) in message, rel


V3V4_ROWS = {  # registry name -> official path under model_dir (hub path: the same)
    "sovits-v3": "s2Gv3.pth",
    "vocoder-v3": "models--nvidia--bigvgan_v2_24khz_100band_256x",
    "sovits-v4": "gsv-v4-pretrained/s2Gv4.pth",
    "vocoder-v4": "gsv-v4-pretrained/vocoder.pth",
}


def test_v3v4_rows_official_paths_and_listed(tmp_path: Path, capsys) -> None:
    """The four v3/v4 files are registry rows at their official paths, no discriminator, and `list` shows them."""
    by = {s.name: s for s in models.registry()}
    for name, rel in V3V4_ROWS.items():
        assert (by[name].path, by[name].repo_id) == (rel, "lj1995/GPT-SoVITS"), name
    bigvgan = "models--nvidia--bigvgan_v2_24khz_100band_256x"
    assert by["vocoder-v3"].files == (f"{bigvgan}/config.json", f"{bigvgan}/bigvgan_generator.pt")
    assert not {"sovits-d-v3", "sovits-d-v4"} & set(by)
    assert "v3/v4" in by["gpt-s1v3"].description  # s1v3.ckpt is their GPT too
    assert models.main(["list", "--model-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    for name, rel in V3V4_ROWS.items():
        line = next(ln for ln in out if ln.startswith(f"{name} "))
        assert "missing" in line and rel in line, line


def test_v3v4_kept_out_of_versions() -> None:
    """v3/v4 are models only: formatting, training and synthesis (VERSIONS, version_models) do not offer them."""
    assert "v3" not in models.VERSIONS and "v4" not in models.VERSIONS
    for version in ("v3", "v4"):
        with pytest.raises(ValueError, match=version):
            models.version_models(version)
    assert models.v3v4_models("v4") == {
        "s1": "gpt-s1v3",
        "s2g": "sovits-v4",
        "vocoder": "vocoder-v4",
        "hubert": "chinese-hubert-base",
        "bert": "chinese-roberta-wwm-ext-large",
    }
    with pytest.raises(ValueError, match="v2"):
        models.v3v4_models("v2")


def test_bigvgan_folder_needs_both_files(tmp_path: Path) -> None:
    folder = tmp_path / "models--nvidia--bigvgan_v2_24khz_100band_256x"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    row = _by_name(models.model_status(tmp_path))["vocoder-v3"]
    assert not row.present and str(folder / "bigvgan_generator.pt") in row.how_to_get
    assert str(folder / "config.json") not in row.how_to_get
    (folder / "bigvgan_generator.pt").write_bytes(b"weights")
    assert _by_name(models.model_status(tmp_path))["vocoder-v3"].present


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_download_v3v4_group_places_official_layout(tmp_path: Path, monkeypatch, version: str) -> None:
    """`download v3` / `v4` fetches s1v3.ckpt, the generator and the vocoder by their hub paths (plus
    HuBERT/BERT), nothing of another version."""
    calls: list = []
    _fake_hub(monkeypatch, calls)
    models.download(version, tmp_path, log=lambda _m: None, check_hub=False)
    files = {c[2] for c in calls if c[0] == "file"}
    bigvgan = "models--nvidia--bigvgan_v2_24khz_100band_256x"
    want = {
        "v3": {"s1v3.ckpt", "s2Gv3.pth", f"{bigvgan}/config.json", f"{bigvgan}/bigvgan_generator.pt"},
        "v4": {"s1v3.ckpt", "gsv-v4-pretrained/s2Gv4.pth", "gsv-v4-pretrained/vocoder.pth"},
    }[version]
    assert files == want
    assert all((tmp_path / f).is_file() for f in want)
    by = _by_name(models.model_status(tmp_path))
    assert all(by[n].present for n in models.GROUPS[version])
    other = "v4" if version == "v3" else "v3"
    assert not by[f"sovits-{other}"].present and not by[f"vocoder-{other}"].present


def test_importing_the_registry_does_not_load_torch() -> None:
    """The Models tab's registry and the download CLI load no torch (seconds on a busy machine), neither
    on import nor when the rows are built."""
    import subprocess
    import sys

    code = (
        "import gpt_sovits.pretrained as p, sys; rows = p.registry(); "
        "print(len(rows) > 30, sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True []"
