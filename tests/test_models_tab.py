"""The Models tab: registry rows present/missing, downloads in the background with the hub mocked at
huggingface_hub's functions, offline said within seconds, one download route in every loader's message,
and stage model choices that default to what is present."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

from core import model_route
from gpt_sovits import pretrained
from ui import models_tab
from ui.context import AppContext
from ui.errors import UserMessage

GPT_V2 = "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt"


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch) -> AppContext:
    import huggingface_hub.constants

    import tools.asr

    # This machine's Hugging Face cache aside: only the tmp model folder counts.
    monkeypatch.setattr(tools.asr, "_in_hf_cache", lambda model: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return AppContext.create(tmp_path / "ws", "en_US", tmp_path / "models")


@pytest.fixture
def hub_up(monkeypatch):
    """A local listening socket stands in for the hub host, so the real TCP probe succeeds."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    monkeypatch.setattr(pretrained, "_hub_endpoint_host", lambda: server.getsockname())
    yield
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the with-block ends: nothing listens there


def fake_hf_hub_download(calls: list, gate: threading.Event | None = None):
    """hf_hub_download writing a small file where the real one would (local_dir/filename)."""

    def fake(repo_id, filename, *, local_dir=None, **kw):
        if gate is not None:
            partial = Path(local_dir) / ".cache" / "huggingface" / "download" / f"{filename}.abc.incomplete"
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"x" * 2_500_000)  # what a real download has written so far
            calls.append((repo_id, filename, kw.get("endpoint")))
            assert gate.wait(10)
            partial.unlink()
        else:
            calls.append((repo_id, filename, kw.get("endpoint")))
        dest = Path(local_dir) / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"w" * 4096)
        return str(dest)

    return fake


def rows_by_name(ctx: AppContext, downloads: pretrained.Downloads) -> dict[str, models_tab.RowView]:
    return {r.name: r for r in models_tab.row_views(ctx, downloads)}


def test_rows_show_present_and_missing_with_sizes(ctx: AppContext) -> None:
    (ctx.model_dir / "gsv-v2final-pretrained").mkdir(parents=True)
    (ctx.model_dir / "gsv-v2final-pretrained" / "s2G2333k.pth").write_bytes(b"g" * 3_000_000)
    hubert = ctx.model_dir / "chinese-hubert-base"
    hubert.mkdir()
    (hubert / "config.json").write_text("{}")
    (hubert / "pytorch_model.bin").write_bytes(b"h" * 1_000_000)
    downloads = pretrained.Downloads()
    rows = rows_by_name(ctx, downloads)
    assert set(rows) == {s.name for s in pretrained.registry()}  # every registry entry is listed
    g, gpt, hub = rows["sovits-v2"], rows["gpt-v2"], rows["chinese-hubert-base"]
    assert g.present and g.disk_bytes == 3_000_000 and g.path == "gsv-v2final-pretrained/s2G2333k.pth"
    assert g.role == "SoVITS (S2) generator" and g.groups == ("v2",)
    assert hub.present and hub.disk_bytes > 1_000_000 and "v2Pro" in hub.groups and "v4" in hub.groups
    assert not gpt.present and gpt.disk_bytes == 0 and gpt.path == GPT_V2
    assert rows["gpt-s1v3"].groups == ("v2Pro", "v2ProPlus", "v3", "v4")
    assert models_tab.status_text(ctx, g) == "✅ present: 3.0 MB on disk (expected ~105 MB)"
    assert models_tab.status_text(ctx, gpt) == "⬜ missing (~155 MB to download)"
    info = models_tab.info_text(ctx, gpt)
    assert "**gpt-v2**" in info and "GPT (S1)" in info and f"`{GPT_V2}`" in info and "v2" in info


def test_layout_lists_every_row_with_a_button(ctx: AppContext) -> None:
    import gradio as gr

    (ctx.model_dir / "s2G488k.pth").parent.mkdir(parents=True, exist_ok=True)
    (ctx.model_dir / "s2G488k.pth").write_bytes(b"g")
    with gr.Blocks():
        ui = models_tab.build(ctx)
    assert set(ui.rows) == {s.name for s in pretrained.registry()}
    assert set(ui.groups) == set(pretrained.GROUPS) >= {"v1", "v2", "v2Pro", "v2ProPlus", "v3", "v4"}
    assert ui.rows["sovits-v1"].download.interactive is False  # present: nothing to fetch
    assert ui.rows["gpt-v1"].download.interactive is True
    assert ui.rows["faster-whisper-tiny.en"].status.elem_id == "models-status-faster-whisper-tiny-en"


def test_download_writes_the_official_layout_and_the_row_becomes_present(
    ctx: AppContext, monkeypatch, hub_up
) -> None:
    import huggingface_hub

    calls: list = []
    gate = threading.Event()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download(calls, gate))

    def no_snapshot(*a, **kw):
        raise OSError("snapshot not mocked here")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_snapshot)
    downloads = pretrained.Downloads()
    names = [s.name for s in pretrained.registry()]
    out = models_tab.start_download(ctx, downloads, names, "gpt-v2")
    message, seen = out[0], out[3]
    assert "Downloading gpt-v2" in message and "close this page" in message and seen == 0
    # While it runs: the row says so with the bytes so far, its button is off, a second click is refused.
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    rows = rows_by_name(ctx, downloads)
    assert rows["gpt-v2"].downloading and rows["gpt-v2"].partial_bytes == 2_500_000
    assert models_tab.status_text(ctx, rows["gpt-v2"]) == "⏳ downloading: 2.5 MB of ~155 MB"
    assert "gpt-v2, 2.5 MB / ~155 MB" in models_tab.progress_text(ctx, downloads)
    again = models_tab.start_download(ctx, downloads, names, "gpt-v2")
    assert again[0] == "gpt-v2 is already being downloaded."
    # The v2 group leaves gpt-v2 to the download that has it (one download at a time per file).
    group = downloads.start("v2", ctx.model_dir)
    assert group is not None and "gpt-v2" not in group.names and "sovits-v2" in group.names
    gate.set()
    downloads.wait(10)
    assert (ctx.model_dir / GPT_V2).read_bytes() == b"w" * 4096
    assert ("lj1995/GPT-SoVITS", GPT_V2, "https://huggingface.co") in calls
    polled = models_tab.poll_downloads(ctx, downloads, names, seen)
    assert polled[2] == 2  # both ended: gpt-v2 done, the group failed at HuBERT (its snapshot is not mocked)
    assert group.state == "failed" and "snapshot not mocked here" in group.error
    assert (ctx.model_dir / "gsv-v2final-pretrained" / "s2D2333k.pth").is_file()
    statuses = dict(zip(names, polled[3 : 3 + len(names)], strict=True))
    buttons = dict(zip(names, polled[3 + len(names) :], strict=True))
    assert statuses["gpt-v2"].startswith("✅ present: 4.1 KB on disk")
    assert buttons["gpt-v2"]["interactive"] is False
    assert "✅ gpt-v2: downloaded (gpt-v2)" in polled[0]


def test_group_download_fetches_every_missing_file(ctx: AppContext, monkeypatch, hub_up) -> None:
    import huggingface_hub

    calls: list = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hf_hub_download(calls))
    for folder in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large"):  # present: not fetched again
        (ctx.model_dir / folder).mkdir(parents=True)
        for name in ("config.json", "pytorch_model.bin", "tokenizer.json"):
            (ctx.model_dir / folder / name).write_text("{}")
    downloads = pretrained.Downloads()
    job = downloads.start("v4", ctx.model_dir)
    assert job is not None and job.names == ("gpt-s1v3", "sovits-v4", "vocoder-v4")
    downloads.wait(10)
    assert job.state == "done", job.error
    assert {c[1] for c in calls} == {
        "s1v3.ckpt",
        "gsv-v4-pretrained/s2Gv4.pth",
        "gsv-v4-pretrained/vocoder.pth",
    }
    rows = rows_by_name(ctx, downloads)
    assert all(rows[n].present for n in pretrained.GROUPS["v4"])
    assert downloads.start("v4", ctx.model_dir) is None  # everything present: nothing starts


def test_offline_is_said_within_seconds_with_the_folder(ctx: AppContext, monkeypatch) -> None:
    port = closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # a mirror nobody serves
    assert pretrained._hub_endpoint_host() == ("127.0.0.1", port)
    downloads = pretrained.Downloads()
    start = time.monotonic()
    with pytest.raises(UserMessage) as info:
        models_tab.start_download(ctx, downloads, [], "sovits-v2")
    assert time.monotonic() - start < 3
    message = info.value.message
    assert "cannot be reached" in message and str(ctx.model_dir / "gsv-v2final-pretrained") in message
    assert (
        f"http://127.0.0.1:{port}/lj1995/GPT-SoVITS/blob/main/gsv-v2final-pretrained/s2G2333k.pth" in message
    )
    assert downloads.jobs() == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no probe at all
    start = time.monotonic()
    with pytest.raises(UserMessage, match="offline mode is on") as info:
        models_tab.start_download(ctx, downloads, [], "demucs-htdemucs")
    assert time.monotonic() - start < 1 and str(ctx.model_dir / "demucs") in info.value.message


ROUTE = re.compile(
    r"Open the Models tab, or run `\.venv/bin/python -m gpt_sovits\.pretrained download (?P<name>\S+)"
    r" --model-dir (?P<dir>[^`]+)`, or put .+ in (?P<folder>\S+) \(from (?P<source>https?://\S+)\)\."
)


def loader_messages(model_dir: Path) -> dict[str, str]:
    """The missing-model message of each loader, for an empty models folder."""
    from gpt_sovits.models.features import FeatureModelNotFoundError, load_bert, load_hubert
    from gpt_sovits.models.sv import SVModelNotFoundError, load_sv
    from gpt_sovits.models.weights import CheckpointError
    from gpt_sovits.models.weights_v3 import load_bigvgan
    from gpt_sovits.text import g2pw
    from tools import asr, demucs_models

    out: dict[str, str] = {}
    for key, load, error in (
        ("hubert", lambda: load_hubert(model_dir / "chinese-hubert-base"), FeatureModelNotFoundError),
        ("bert", lambda: load_bert(model_dir / "chinese-roberta-wwm-ext-large"), FeatureModelNotFoundError),
        ("sv", lambda: load_sv(model_dir / pretrained.SV_FILE), SVModelNotFoundError),
        ("bigvgan", lambda: load_bigvgan(model_dir / pretrained.BIGVGAN_FOLDER), CheckpointError),
    ):
        with pytest.raises(error) as info:
            load()
        out[key] = str(info.value)
    (model_dir / "G2PWModel").mkdir(parents=True)
    with pytest.raises(g2pw.G2PWUnavailableError) as info:
        g2pw.find_g2pw_files(model_dir)
    out["g2pw"] = str(info.value)
    out["asr"] = asr.model_status("large-v3", model_dir).message
    out["demucs"] = demucs_models.missing_model_message("htdemucs", model_dir / "demucs")
    out["registry"] = pretrained.missing_message("gpt-v2", model_dir)
    return out


def test_every_loader_says_the_same_download_route(ctx: AppContext) -> None:
    registry_names = {s.name for s in pretrained.registry()}
    messages = loader_messages(ctx.model_dir)
    for key, message in messages.items():
        assert "--download" not in message and "huggingface-cli" not in message, key
        found = ROUTE.search(message)
        assert found, (key, message)
        assert found["name"] in registry_names, (key, found["name"])
        assert Path(found["dir"]) == ctx.model_dir, (key, found["dir"])
        # the download command would fill the very folder the message names
        spec = pretrained.find_spec(found["name"])
        assert Path(found["folder"]) in {
            (ctx.model_dir / spec.path).parent,
            ctx.model_dir / spec.path,
            ctx.model_dir / Path(spec.path).parts[0],
        }, (key, found["folder"])
    # The loaders' messages are the registry's: the Models tab, the CLI and the loaders agree.
    status = {s.name: s.how_to_get for s in pretrained.model_status(ctx.model_dir)}
    assert ROUTE.search(status["chinese-hubert-base"])[0] == ROUTE.search(messages["hubert"])[0]
    assert ROUTE.search(status["demucs-htdemucs"])[0] == ROUTE.search(messages["demucs"])[0]
    assert ROUTE.search(status["faster-whisper-large-v3"])[0] == ROUTE.search(messages["asr"])[0]
    assert ROUTE.search(status["sv-eres2netv2"])[0] == ROUTE.search(messages["sv"])[0]
    assert ROUTE.search(status["vocoder-v3"])[0] == ROUTE.search(messages["bigvgan"])[0]
    assert ROUTE.search(status["g2pw"])[0] == ROUTE.search(messages["g2pw"])[0]


def test_route_translates_with_the_tab_translator(ctx: AppContext) -> None:
    from i18n import I18n

    spec = pretrained.find_spec("gpt-v2")
    zh = pretrained.route(spec, ctx.model_dir, I18n("zh_CN"))
    assert zh != pretrained.route(spec, ctx.model_dir) and "“模型”标签页" in zh
    assert f"{model_route.DOWNLOAD_COMMAND} gpt-v2 --model-dir {ctx.model_dir}" in zh


def test_preferred_present_choice() -> None:
    present = {"b", "c"}
    assert pretrained.preferred_present("a", ["a", "b", "c"], present.__contains__) == "b"
    assert pretrained.preferred_present("c", ["a", "b", "c"], present.__contains__) == "c"
    assert pretrained.preferred_present("a", ["a", "x"], present.__contains__) == "a"  # nothing present


def test_stage_defaults_follow_what_is_present(ctx: AppContext) -> None:
    from tools import demucs_models

    assert pretrained.preferred_demucs_model(ctx.model_dir) == demucs_models.DEFAULT_MODEL == "htdemucs"
    folder = ctx.model_dir / "demucs"
    folder.mkdir(parents=True)
    bag = demucs_models.builtin_bag("mdx_extra")
    (folder / "mdx_extra.yaml").write_text(f"models: {list(bag.signatures)}\n")
    for sig in bag.signatures:
        (folder / f"{sig}.safetensors").write_bytes(b"x")
    assert pretrained.preferred_demucs_model(ctx.model_dir) == "mdx_extra"
    whisper = ctx.model_dir / "faster-whisper-small"
    whisper.mkdir()
    assert pretrained.preferred_whisper_model(ctx.model_dir) == "large-v3"  # nothing present: the default
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (whisper / name).write_text("{}")
    assert pretrained.preferred_whisper_model(ctx.model_dir) == "small"


def test_tabs_select_the_present_model(ctx: AppContext) -> None:
    from tools import demucs_models
    from ui import asr_tab, separate_tab

    assert separate_tab.default_model(ctx) == "htdemucs" and asr_tab.default_model(ctx) == "large-v3"
    folder = ctx.model_dir / "demucs"
    folder.mkdir(parents=True)
    bag = demucs_models.builtin_bag("htdemucs_ft")
    (folder / "htdemucs_ft.yaml").write_text(f"models: {list(bag.signatures)}\n")
    for sig in bag.signatures:
        (folder / f"{sig}.safetensors").write_bytes(b"x")
    whisper = ctx.model_dir / "faster-whisper-base"
    whisper.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (whisper / name).write_text("{}")
    assert separate_tab.default_model(ctx) == "htdemucs_ft"
    choices, status = separate_tab.load_default_model(ctx)
    assert choices["value"] == "htdemucs_ft" and "found locally" in status
    assert asr_tab.default_model(ctx) == "base"
    choices, status = asr_tab.load_default_model(ctx)
    assert choices["value"] == "base" and "✅" in status
