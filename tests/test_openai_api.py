"""The OpenAI-compatible speech endpoint, served by the real app (webui's build and launch) on tiny models.

A voice is saved through the Voice cloning tab's own handler, then used over HTTP: wav/flac/mp3/opus/pcm
come back as audio of the documented rate, a format that is not offered (aac) or a bad field is a 400 in
OpenAI's error shape, a streamed request gets the sentences as separate chunks, and with --auth the same
login guards the route (401 without it).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.support.synth import voiced_segments

TEXT = "你好世界。今天天气很不错。我们去公园。"  # three sentences with the voice's cut5
MAX_TEXT = 200


def _reference(path: Path) -> Path:
    audio = voiced_segments([("silence", 0.3), ("voice", 3.4), ("silence", 0.3)])
    sf.write(path, audio, 32000, subtype="PCM_16")
    return path


def _launch(app: gr.Blocks, argv: list[str], ctx, routes) -> str:
    from webui import launch_kwargs, make_parser

    kwargs = launch_kwargs(make_parser().parse_args(["--port", "0", *argv]), ctx, routes)
    kwargs.pop("server_port")  # any free port
    app.queue().launch(prevent_thread_lock=True, quiet=True, **kwargs)
    return app.local_url.rstrip("/")


def save_voice_in_tab(ctx, name: str, ref: Path, tiny) -> None:
    """Save a voice as the tab's "Save as voice" button does: its handler on the tab's components."""
    from ui.inference_tab import build, save_voice_form

    with gr.Blocks():
        c = build(ctx)
    ui = c.ui
    values = {comp: comp.value for comp in ui.knobs.values()}
    values |= {ui.knobs["max_new_tokens"]: 12, ui.knobs["cut"]: "cut5", ui.knobs["ref_text"]: "你好世界。"}
    values |= {ui.voice_name: name, ui.voice_overwrite: False, ui.ref_audio: str(ref), ui.aux_refs: None}
    values |= {ui.gpt: str(tiny.s1), ui.sovits: str(tiny.s2g)}
    updates = save_voice_form(c, values)
    assert updates[ui.voice]["value"] == name and name in updates[ui.voice]["choices"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_pretrained) -> Iterator[str]:
    """The whole app as `python webui.py` builds and launches it, with a voice saved from the tab."""
    from ui.context import AppContext
    from webui import build_app

    ws = tmp_path_factory.mktemp("openai_ws")
    ctx = replace(AppContext.create(ws, "en_US", tiny_pretrained.root), max_text=MAX_TEXT)
    save_voice_in_tab(ctx, "tab voice", _reference(ws / "ref.wav"), tiny_pretrained)
    app = build_app(ctx)
    assert [r.path for r in app.extra_routes] == ["/v1/audio/speech", "/v1/audio/voices"]
    url = _launch(app, ["--workspace", str(ws)], ctx, app.extra_routes)
    try:
        yield url
    finally:
        app.close()


def _speech(url: str, **body) -> httpx.Response:
    body = {"model": "anything", "input": TEXT, "voice": "tab voice"} | body
    return httpx.post(url + "/v1/audio/speech", json=body, timeout=300)


@pytest.mark.parametrize(("fmt", "rate", "media"), [("wav", 32000, "audio/wav"), ("flac", 32000, "audio/flac"),
                                                    ("mp3", 32000, "audio/mpeg"), ("opus", 48000, "audio/ogg")])  # fmt: skip
def test_a_voice_saved_in_the_tab_speaks_in_each_format(server, fmt, rate, media):
    r = _speech(server, response_format=fmt, speed=1.2)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media
    audio, sr = sf.read(io.BytesIO(r.content))
    assert sr == rate and audio.ndim == 1 and audio.shape[0] > 0.3 * rate  # three sentences with pauses
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_pcm_is_raw_16_bit_at_24_khz_and_the_default_format_is_mp3(server):
    pcm = _speech(server, response_format="pcm")
    assert pcm.status_code == 200 and pcm.headers["content-type"] == "audio/pcm"
    assert len(pcm.content) % 2 == 0 and not pcm.content.startswith(b"RIFF")
    samples = np.frombuffer(pcm.content, "<i2")
    assert samples.size > 0.3 * 24000 and np.abs(samples).max() > 0
    default = httpx.post(
        server + "/v1/audio/speech", json={"input": "你好。", "voice": "tab voice"}, timeout=300
    )
    assert default.status_code == 200 and default.headers["content-type"] == "audio/mpeg"


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ({"response_format": "aac"}, 400, "response_format", "'aac' is not supported by this server: use one of mp3"),
        ({"response_format": "wma"}, 400, "response_format", "'wma' is not a response format"),
        ({"speed": 9}, 400, "speed", "'speed' must be from 0.25 to 4"),
        ({"speed": "fast"}, 400, "speed", "'speed' must be a number"),
        ({"voice": "nobody"}, 400, "voice", "no saved voice called 'nobody'. Saved voices: tab voice."),
        ({"input": ""}, 400, "input", "'input' must be the text to speak"),
        ({"input": "你好。" * 100}, 400, "input", f"at most {MAX_TEXT} characters"),
        ({"response_format": "flac", "stream": True}, 400, "response_format", "flac cannot be streamed"),
        ({"stream_format": "chunks"}, 400, "stream_format", "'audio' or 'sse'"),
    ],
)  # fmt: skip
def test_bad_requests_are_400s_in_openais_error_shape(server, body, status, param, message):
    r = _speech(server, **body)
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert (
        error["type"] == "invalid_request_error" and error["param"] == param and message in error["message"]
    )
    assert set(error) == {"message", "type", "param", "code"}


def test_a_body_that_is_not_json_is_a_400(server):
    r = httpx.post(server + "/v1/audio/speech", content=b"{oops", timeout=30)
    assert r.status_code == 400 and "must be JSON" in r.json()["error"]["message"]


def test_streaming_sends_the_sentences_as_they_finish(server):
    chunks = []
    body = {"input": TEXT, "voice": "tab voice", "response_format": "wav", "stream": True}
    with httpx.stream("POST", server + "/v1/audio/speech", json=body, timeout=300) as r:
        assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
        assert r.headers["content-type"] == "audio/wav"
        chunks = [c for c in r.iter_raw() if c]
    data = b"".join(chunks)
    assert data[:4] == b"RIFF" and data[36:40] == b"data" and data[40:44] == b"\xff\xff\xff\xff"
    assert len(chunks) >= 3  # the header, then one piece per sentence (three sentences)
    samples = np.frombuffer(data[44:], "<i2")
    assert samples.size > 0.3 * 32000 and np.abs(samples).max() > 0

    events = []
    body = {"input": TEXT, "voice": "tab voice", "response_format": "mp3", "stream_format": "sse"}
    with httpx.stream("POST", server + "/v1/audio/speech", json=body, timeout=300) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["speech.audio.delta"] * 3 + ["speech.audio.done"]
    first, sr = sf.read(io.BytesIO(base64.b64decode(events[0]["audio"])))
    assert sr == 32000 and first.shape[0] > 0


def test_voices_are_listed(server):
    voices = httpx.get(server + "/v1/audio/voices", timeout=30).json()["voices"]
    assert [v["name"] for v in voices] == ["tab voice"]
    assert voices[0]["ref_lang"] == "zh" and voices[0]["gpt"].endswith(".ckpt")


def test_with_auth_the_route_needs_the_same_login(tmp_path, tiny_pretrained):
    from ui.context import AppContext
    from ui.inference_tab import build

    ctx = AppContext.create(tmp_path, "en_US", tiny_pretrained.root)
    with gr.Blocks() as app:
        c = build(ctx)
    url = _launch(app, ["--workspace", str(tmp_path), "--auth", "ann:s3cret:x"], ctx, c.routes)
    try:
        body = {"model": "m", "input": "你好。", "voice": "v", "response_format": "wav"}
        bare = httpx.post(url + "/v1/audio/speech", json=body, timeout=30)
        assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(url + "/v1/audio/voices", timeout=30).status_code == 401
        wrong = httpx.get(url + "/v1/audio/voices", auth=("ann", "nope"), timeout=30)
        assert wrong.status_code == 401
        assert httpx.get(url + "/v1/audio/voices", auth=("ann", "s3cret:x"), timeout=30).json() == {
            "voices": []
        }
        bearer = {"Authorization": "Bearer ann:s3cret:x"}
        assert httpx.get(url + "/v1/audio/voices", headers=bearer, timeout=30).status_code == 200
        # A session as the page's login makes it (Gradio's cookie): past the login, the voice is checked.
        with httpx.Client(base_url=url, timeout=30) as client:
            login = client.post("/login", data={"username": "ann", "password": "s3cret:x"})
            assert login.status_code == 200
            r = client.post("/v1/audio/speech", json=body)
            assert r.status_code == 400 and "No voice is saved yet" in r.json()["error"]["message"]
    finally:
        app.close()


def test_a_client_that_hangs_up_stops_its_synthesis(server, caplog):
    import logging
    import time

    caplog.set_level(logging.INFO, logger="ui.inference_helpers")
    caplog.set_level(logging.INFO, logger="ui.openai_api")
    long_text = "你好世界。" * 40  # 40 sentences: far longer than the client waits
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server + "/v1/audio/speech", json={"input": long_text, "voice": "tab voice"}, timeout=1.5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "the client hung up" not in caplog.text:
        time.sleep(0.2)
    assert "the client hung up; the synthesis was stopped" in caplog.text
    stopped = [r.getMessage() for r in caplog.records if "stopped after" in r.getMessage()]
    assert stopped and int(stopped[-1].split("after ")[1].split(" ")[0]) < 40  # fewer units than sentences
    assert _speech(server, input="你好。", response_format="wav").status_code == 200  # the models are free
    # Only the request that was given up was stopped: a finished one is not reported as stopped.
    assert len([r for r in caplog.records if "stopped after" in r.getMessage()]) == len(stopped) == 1
