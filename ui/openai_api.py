"""An OpenAI-compatible speech endpoint on the web UI's own server: what other tools already speak.

    POST /v1/audio/speech   {"model": "...", "input": "text", "voice": "<saved voice>",
                             "response_format": "mp3", "speed": 1.0, "stream": false}
    GET  /v1/audio/voices   {"voices": [{"name": ..., "ref_lang": ..., "gpt": ..., "sovits": ...}]}

``voice`` is the name of a voice saved in the Voice cloning tab ("Save as voice", stored by
``gpt_sovits.infer.voices``): it brings the reference clip(s), their text and language, the GPT/SoVITS
weights and the synthesis settings. ``model`` may be any string (OpenAI clients require one): the weights
come from the voice. ``speed`` (0.25-4.0), when given, replaces the voice's. Formats: wav and flac
(32 kHz 16-bit), mp3 (32 kHz), opus (Ogg Opus, 48 kHz), pcm (raw signed 16-bit little-endian mono at
24 kHz, as OpenAI defines it); aac and anything else is refused with a 400 in OpenAI's error shape
``{"error": {"message", "type", "param", "code"}}``.

Streaming: ``"stream": true`` or ``"stream_format": "audio"`` sends the audio with chunked transfer, one
piece per sentence as soon as it is decoded (wav: a header with unknown sizes, then raw samples; mp3 and
opus: self-contained pieces, which players play one after another; pcm: raw samples). ``"stream_format":
"sse"`` sends server-sent events ``{"type": "speech.audio.delta", "audio": <base64>}`` then
``{"type": "speech.audio.done"}``. flac cannot be streamed. A client that hangs up stops the synthesis
between two sentences.

Every request runs through the app's one ``SynthesisService`` (the tab's and ``/synthesize``'s model
cache and turn scheduler) and its ``--max-text`` limit. With ``--auth`` the routes need the same login as
the page: Gradio's session cookie (a browser that logged in, or ``POST /login``), or the same user and
password as HTTP Basic credentials (``curl -u user:pass``) or as a bearer token ``user:pass`` (an OpenAI
client's ``api_key``), checked by the app's own login callable (failed logins are slowed down alike).
Without them: 401.

The routes are Starlette routes handed to Gradio's FastAPI app when it is created (``launch(app_kwargs=
{"routes": ...})``, see webui.py), so they are served by the same server, on the same port.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import inspect
import json
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.audio import DATASET_RATE
from core.errors import UserError
from gpt_sovits.infer.request import TextTooLongError, param
from ui import inference_helpers as H
from ui.context import AppContext

logger = logging.getLogger(__name__)

SPEECH_PATH = "/v1/audio/speech"
VOICES_PATH = "/v1/audio/voices"
# OpenAI's formats that are offered here (aac is not), in OpenAI's order.
API_FORMATS = ("mp3", "opus", "flac", "wav", "pcm")
OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
STREAM_FORMATS = ("audio", "sse")
# Audio does not shrink under gzip/brotli: the app's compression middleware passes it through.
DISCONNECT_POLL_S = 0.5  # how often a whole-file request checks that its client is still there
_NO_COMPRESSION = {"Content-Encoding": "identity", "Cache-Control": "no-store"}


class ApiError(Exception):
    """A request refused with an HTTP status and OpenAI's error shape."""

    def __init__(
        self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def response(self, code: str | None = None) -> JSONResponse:
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": code}
        return JSONResponse({"error": error}, status_code=self.status)


@dataclass(frozen=True)
class SpeechRequest:
    """A checked `/v1/audio/speech` body."""

    input: str
    voice: str
    response_format: str = "mp3"
    speed: float | None = None  # None: the voice's
    stream: str | None = None  # None: one whole file; "audio" or "sse"
    model: str = ""

    @classmethod
    def from_json(cls, body: Any) -> SpeechRequest:
        """Raises ApiError (400) naming the field that is wrong."""
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "'input' must be the text to speak (a non-empty string).", "input")
        voice = body.get("voice")
        if isinstance(voice, dict):  # newer OpenAI clients may send {"id": ...}
            voice = voice.get("id") or voice.get("name")
        if not isinstance(voice, str) or not voice.strip():
            raise ApiError(400, "'voice' must be the name of a saved voice (GET /v1/audio/voices).", "voice")
        fmt = body.get("response_format") or "mp3"
        if fmt not in API_FORMATS:
            supported = ", ".join(API_FORMATS)
            why = "is not supported by this server" if fmt in OPENAI_FORMATS else "is not a response format"
            raise ApiError(400, f"response_format {fmt!r} {why}: use one of {supported}.", "response_format")
        speed = body.get("speed")
        if speed is not None:
            lo, hi = param("speed").range or (0.25, 4.0)
            if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed):
                raise ApiError(400, f"'speed' must be a number from {lo:g} to {hi:g}.", "speed")
            if not lo <= speed <= hi:
                raise ApiError(400, f"'speed' must be from {lo:g} to {hi:g}, got {speed:g}.", "speed")
        stream_format = body.get("stream_format")
        if stream_format is not None and stream_format not in STREAM_FORMATS:
            raise ApiError(400, "'stream_format' must be 'audio' or 'sse'.", "stream_format")
        stream = stream_format or ("audio" if body.get("stream") is True else None)
        if stream and not H.audio_format(fmt).streamable:
            streamable = ", ".join(f for f in API_FORMATS if H.audio_format(f).streamable)
            raise ApiError(400, f"{fmt} cannot be streamed: use one of {streamable}.", "response_format")
        model = body.get("model")
        return cls(
            text, voice.strip(), fmt, None if speed is None else float(speed), stream, str(model or "")
        )


# ------------------------------------------------------------------------------------ auth


def _basic_or_bearer(request: Request) -> tuple[str, str] | None:
    """(user, password) from `Authorization: Basic …` or `Authorization: Bearer user:password`."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    elif scheme.lower() != "bearer":
        return None
    user, sep, password = value.partition(":")
    return (user, password) if sep and user else None


async def authorized(request: Request) -> bool:
    """Whether the request may use the routes: the app has no login, or the caller has Gradio's session
    cookie for it, or gives the login's user and password (checked by the app's own auth)."""
    app = request.app  # gradio.routes.App: its auth and session tokens (as gradio 6.31's get_current_user)
    auth, dependency = getattr(app, "auth", None), getattr(app, "auth_dependency", None)
    if auth is None and dependency is None:
        return True
    cookie_id = getattr(app, "cookie_id", "")
    token = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(
        f"access-token-unsecure-{cookie_id}"
    )
    if token and token in getattr(app, "tokens", {}):
        return True
    if dependency is not None:
        user = dependency(request)
        return (await user if inspect.isawaitable(user) else user) is not None
    creds = _basic_or_bearer(request)
    if creds is None:
        return False
    if callable(auth):  # webui's LoginThrottle sleeps after a failure: not on the event loop
        ok = await run_in_threadpool(auth, *creds)
        return bool(await ok if inspect.isawaitable(ok) else ok)
    import hmac

    expected = auth.get(creds[0])
    return expected is not None and hmac.compare_digest(creds[1].encode(), str(expected).encode())


def _unauthorized() -> JSONResponse:
    response = ApiError(
        401, "Log in first: give the server's --auth user and password (Basic, or Bearer user:password)."
    ).response("invalid_api_key")
    response.headers["WWW-Authenticate"] = 'Basic realm="GPT-SoVITS"'
    return response


# ------------------------------------------------------------------------------------ synthesis


def speech_form(ctx: AppContext, speech: SpeechRequest) -> H.SynthesisForm:
    """The synthesis form of a request: the voice's values, the input text, the speed when given.
    Raises ApiError (400) for an unknown or broken voice."""
    from gpt_sovits.infer.voices import VoiceError

    try:
        values = H.with_voice({"voice": speech.voice}, ctx.workspace)
    except VoiceError as e:
        raise ApiError(400, str(e), "voice") from None
    values |= {"text": speech.input, "random_seed": False}
    if speech.speed is not None:
        values["speed"] = speech.speed
    return H.form_from_values(values)


def _user_error(e: UserError) -> ApiError:
    return ApiError(400, str(e), "input" if isinstance(e, TextTooLongError) else None)


class Speech:
    """The route handlers, over the app's context and synthesis service."""

    def __init__(self, ctx: AppContext, service: H.SynthesisService) -> None:
        self.ctx, self.service = ctx, service

    def _work(self, form: H.SynthesisForm) -> Any:
        ctx, service = self.ctx, self.service

        def work(job: Any, emit: Any) -> H.SynthesisOutcome:
            return H.synthesize(
                form,
                ctx.workspace,
                ctx.model_dir,
                service.cache,
                job=job,
                max_text=service.max_text,
                precision=service.precision,
                on_chunk=emit,
            )

        return work

    async def speech(self, request: Request) -> Response:
        if not await authorized(request):
            return _unauthorized()
        try:
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "The request body must be JSON.") from None
            speech = SpeechRequest.from_json(body)
            form = speech_form(self.ctx, speech)
            try:
                H.check_form(form, self.service.max_text)
            except UserError as e:
                raise _user_error(e) from None
            events = self.service.run_streaming(self._work(form), SPEECH_PATH)
            if speech.stream:
                first = await self._next(events)  # errors before any audio are still a 400
                return StreamingResponse(
                    self._streamed(speech, first, events),
                    media_type="text/event-stream" if speech.stream == "sse" else self._media(speech),
                    headers=_NO_COMPRESSION,
                )
            outcome = await self._whole(request, events)
            if outcome is None:  # the client hung up: the synthesis was stopped, nobody reads an answer
                return Response(status_code=499)
            audio = H.encode_audio(outcome.result.audio, outcome.result.sample_rate, speech.response_format)
            return Response(audio, media_type=self._media(speech), headers=_NO_COMPRESSION)
        except ApiError as e:
            logger.info("%s refused: %s", SPEECH_PATH, e.message)
            return e.response()

    async def _whole(self, request: Request, events: AsyncIterator[tuple[str, Any]]) -> Any:
        """The outcome once every sentence is done; None when the client hangs up first (checked twice a
        second), in which case the synthesis is cancelled and the models go to the next request."""

        async def outcome() -> Any:
            while True:
                kind, value = await self._next(events)
                if kind == "done":
                    return value

        task = asyncio.ensure_future(outcome())
        while True:
            done, _pending = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await events.aclose()
                logger.info("%s: the client hung up; the synthesis was stopped", SPEECH_PATH)
                return None

    @staticmethod
    def _media(speech: SpeechRequest) -> str:
        return H.audio_format(speech.response_format).media_type

    @staticmethod
    async def _next(events: AsyncIterator[tuple[str, Any]]) -> tuple[str, Any]:
        """The next event; a person's error as a 400, any other as a logged 500."""
        try:
            return await anext(events)
        except UserError as e:
            raise _user_error(e) from None
        except Exception as e:
            logger.exception("internal error in %s", SPEECH_PATH)
            kind = type(e).__name__
            raise ApiError(
                500, f"Internal error ({kind}): the server log has the details.", None, "server_error"
            ) from e

    async def _streamed(
        self, speech: SpeechRequest, first: tuple[str, Any], events: AsyncIterator[tuple[str, Any]]
    ) -> AsyncIterator[bytes]:
        fmt, sse = speech.response_format, speech.stream == "sse"
        kind, value = first  # the rate of the first piece is the stream's (24/32/48 kHz by model version)
        header = H.stream_header(fmt, int(value.sample_rate) if kind == "chunk" else DATASET_RATE)
        if header and not sse:
            yield header
        item: tuple[str, Any] | None = first
        try:
            while item is not None:
                kind, value = item
                if kind == "chunk":
                    data = H.encode_chunk(value.audio, value.sample_rate, fmt)
                    if sse:
                        event = {
                            "type": "speech.audio.delta",
                            "audio": base64.b64encode(header + data).decode(),
                        }
                        header = b""
                        yield f"data: {json.dumps(event)}\n\n".encode()
                    else:
                        yield data
                else:  # done
                    if sse:
                        yield b'data: {"type": "speech.audio.done"}\n\n'
                    return
                try:
                    item = await self._next(events)
                except ApiError as e:  # the status is sent already: the stream ends, the log says why
                    logger.info("%s stream ended early: %s", SPEECH_PATH, e.message)
                    if sse:
                        yield f"data: {json.dumps({'type': 'error', 'error': {'message': e.message}})}\n\n".encode()
                    return
        finally:
            await events.aclose()  # a client that hung up cancels the synthesis

    async def voices(self, request: Request) -> Response:
        if not await authorized(request):
            return _unauthorized()
        return JSONResponse({"voices": voice_rows(self.ctx)})


def voice_rows(ctx: AppContext) -> list[dict[str, Any]]:
    """One row per saved voice: name, reference language and text, weights ("" = the default)."""
    from gpt_sovits.infer.voices import VoiceError, load_voice

    rows = []
    for name in H.voice_choices(ctx.workspace):
        try:
            v = load_voice(ctx.workspace, name, check_weights=False)
        except VoiceError as e:
            rows.append({"name": name, "error": str(e)})
            continue
        rows.append(
            {"name": name, "ref_lang": v.ref_lang, "ref_text": v.ref_text, "gpt": v.gpt, "sovits": v.sovits}
        )
    return rows


def speech_routes(ctx: AppContext, service: H.SynthesisService) -> list[Route]:
    """The routes to hand to the app's FastAPI app (webui.py: ``launch(app_kwargs={"routes": ...})``)."""
    handlers = Speech(ctx, service)
    return [
        Route(SPEECH_PATH, handlers.speech, methods=["POST"]),
        Route(VOICES_PATH, handlers.voices, methods=["GET"]),
    ]
