"""The synthesiser: GPT-SoVITS v1/v2/v2Pro/v2ProPlus/v3/v4 text to speech, the one behind the Voice cloning tab, the API and the CLI.

Pipeline (as the reference's ``TTS_infer_pack/TTS.py`` and ``inference_webui.get_tts_wav``):

1. Reference (gpt_sovits.infer.reference): 3-10 s. Its 16 kHz audio plus 0.3 s x 32000 = 9600 zero
   samples goes through HuBERT and ``SynthesizerTrn.extract_latent`` -> prompt semantic tokens (Tp,). Its
   32 kHz linear spectrogram (and those of the auxiliary references) give S2 its timbre; S2 averages their
   style vectors. v2Pro/v2ProPlus also take each clip's speaker-verification embedding (1, 20480): the
   clip at 32 kHz after its peak limiting, resampled to 16 kHz, through ERes2NetV2 (``sv/...ckpt`` of
   model_dir), as the reference's ``TTS._get_ref_spec``; it is cached with the prepared reference. v1/v2
   models never load the SV model.
2. Text (gpt_sovits.infer.pieces): cut into pieces (cut method, short pieces merged, long ones split), then
   per piece the language runs -> phone ids and BERT features (1024, n) (zeros for non-Chinese). The prompt
   text's phones and BERT are prepended to every piece; without prompt text (reference-free mode) S1 gets
   neither the prompt phones nor the prompt tokens.
3. S1 samples N candidates per piece in one batched KV-cache decode; each keeps its tokens and per-token
   log-probabilities. A scorer picks one per piece (gpt_sovits.infer.scoring): highest mean log-probability,
   blended with the scorers the caller hands in (``scorers``, and the reranker ``reranker_loader`` loads
   from the request's ``clvp_path``) and, when weighted, with ASR agreement and speaker similarity of each
   decoded candidate (gpt_sovits.infer.blends). Every candidate is returned with its scores.
4. S2 decodes the chosen tokens with the target phones (speed, noise scale); pieces are joined with
   ``pause`` seconds of silence. Output: 32 kHz float32 mono.

v3/v4 SoVITS weights (``SynthesizerTrnV3``: flow matching + a vocoder), as the reference's
``TTS.using_vocoder_synthesis`` and ``inference_webui``'s v3 branch: the reference's log-mel (the clip
resampled to 24 kHz for v3, 32 kHz for v4, not peak-limited) and the conditioning of its prompt tokens and
prompt phones form the CFM prompt (at most ``t_ref`` frames: 468 / 500); each piece's conditioning goes
through the CFM in chunks of ``t_chunk`` frames (934 / 1000) with ``sample_steps`` Euler steps (default 32 /
8), each chunk continuing from the end of the previous one, then through the vocoder (BigVGAN 24 kHz for v3,
the 48 kHz vocoder for v4; files under model_dir, gpt_sovits.pretrained's v3/v4 rows). The output rate is
24 kHz (v3) or 48 kHz (v4): ``SynthesisResult.sample_rate``. As in the reference they need the reference
text (no reference-free mode) and take no auxiliary references; ``noise_scale`` does not apply. The CFM
noise comes from the same per-piece seeded generator as S2's noise, so seeds repeat audio here too.

The same seed and inputs give the same audio: S1 draws from a torch.Generator seeded per batch, S2's noise
from one seeded per piece, so ``reassemble`` can swap one piece's candidate and re-decode only that piece.

The synthesiser never imports the reranker's package: its callers (the web UI, ``python -m gpt_sovits.infer``)
hand it ``reranker_loader=clvp.load_scorer``.

Bounded and fair: a text over ``max_text`` characters is refused before anything loads, and every unit of
model work (the preparation, each S1 batch, each piece's scoring and S2 decode, each re-decoded candidate)
runs inside ``turn()``, which a server hands in as ``job.turn`` of its ``gpt_sovits.infer.scheduler``: the
units of concurrent requests then alternate on the one model, and a cancelled job stops between them.
S1 calls ``yield_turn()`` between decoding steps (``job.pass_turn``), so a long batch lets waiting
requests in too; the tokens are the same either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.audio import DATASET_RATE, HUBERT_RATE
from core.errors import UserError
from gpt_sovits.device import autocast_for
from gpt_sovits.infer.cache import ModelCache, clip_identity, file_key
from gpt_sovits.infer.pieces import Piece, has_words, prompt_text, split_text, text_phones, text_pieces
from gpt_sovits.infer.reference import check_reference, describe, read_reference
from gpt_sovits.infer.request import (
    MAX_TEXT_CHARS,
    SynthesisRequest,
    TTSInputError,
    check_lengths,
    check_ranges,
)
from gpt_sovits.infer.result import (
    CandidateInfo,
    ProgressFn,
    RerankerLoader,
    Scorer,
    SentenceResult,
    StreamChunk,
    SynthesisResult,
    no_progress,
)
from gpt_sovits.infer.scoring import best_candidate, select_candidates

if TYPE_CHECKING:
    from gpt_sovits.models.s1 import S1Config, Text2Semantic
    from gpt_sovits.models.s2 import S2Config, SynthesizerTrn
    from gpt_sovits.models.sampling import SamplingParams


@dataclass
class _Reference:
    """A prepared reference: prompt tokens (Tp,) (None in reference-free mode), spectrograms and, for
    v2Pro/v2ProPlus, the clips' SV embeddings."""

    prompt: torch.Tensor | None
    specs: list[torch.Tensor]  # each (1, 1025, T) on the model device
    sv: list[torch.Tensor] | None = None  # one (1, 20480) fp32 per spec (v2Pro/v2ProPlus), else None
    mel: torch.Tensor | None = None  # v3/v4: the clip's log-mel (1, 100, T) at the profile's mel rate, CPU
    # v3/v4: the CFM prompt per prompt-phone sequence, kept with the (cached) reference: computed once
    v3_prompts: dict[tuple[int, ...], Any] = field(default_factory=dict)


def _noise_generator(seed: int, index: int) -> torch.Generator:
    """S2's noise for piece ``index``: independent of batching, so re-decoding a piece repeats it."""
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63 - 1))


def _batches(n: int, rows_per_batch: int, candidates: int) -> list[list[int]]:
    """Piece indices per S1 batch: the first piece alone (first audio soon), then full batches."""
    per = max(1, rows_per_batch // max(1, candidates))
    out = [[0]] if n else []
    i = 1
    while i < n:
        out.append(list(range(i, min(n, i + per))))
        i += per
    return out


@dataclass
class _Prompt:
    """The prompt text's phone ids and BERT features (1024, n); both empty in reference-free mode."""

    phones: list[int]
    bert: torch.Tensor


@dataclass
class _Plan:
    """One run, checked and prepared: what every S1 batch and every piece's choice needs."""

    request: SynthesisRequest
    params: SamplingParams
    seed: int
    pieces: list[Piece]
    ref: _Reference
    prompt: _Prompt
    scorers: dict[str, tuple[Scorer, float]]
    started: float  # perf_counter() when preparing began (for the time to first audio)
    blend: bool = False  # audio blends on: decode every candidate and rate it
    whisper: Any = None
    ref_embedding: np.ndarray | None = None
    v3: Any = None  # v3/v4: the CFM prompt (s2v3.V3Prompt) on the model device


@dataclass
class _RunState:
    """What one run collects besides the chunks it yields."""

    timings: dict[str, float] = field(default_factory=dict)
    specs: list[torch.Tensor] = field(default_factory=list)
    sv: list[torch.Tensor] | None = None
    v3: Any = None  # v3/v4: the CFM prompt on CPU, kept for reassemble()


class Synthesizer:
    """GPT + SoVITS weights plus the HuBERT/BERT folders under ``model_dir``, loaded lazily via ``cache``.

    Cheap to build: the UI makes one per request around the app's shared ModelCache. ``scorers`` adds
    named candidate scorers with weights (see ``Scorer``). ``reranker_loader`` (e.g. ``clvp.load_scorer``)
    turns a request's ``clvp_path`` into the "clvp" scorer; without it such a request is refused.
    ``max_text`` is the longest text accepted, in characters (None: no limit). ``turn`` is entered around
    each unit of model work (default: nothing to wait for; a server passes ``job.turn`` of its scheduler)
    and ``yield_turn`` is called between S1 decoding steps (a server passes ``job.pass_turn``).
    """

    rows_per_batch = 16  # S1 rows (pieces x candidates) decoded together

    def __init__(
        self,
        gpt_path: str | Path,
        sovits_path: str | Path,
        model_dir: str | Path,
        device: str = "auto",
        cache: ModelCache | None = None,
        scorers: Mapping[str, tuple[Scorer, float]] | None = None,
        reranker_loader: RerankerLoader | None = None,
        max_text: int | None = MAX_TEXT_CHARS,
        turn: Callable[[], AbstractContextManager[Any]] = nullcontext,
        yield_turn: Callable[[], None] | None = None,
        precision: str = "auto",
    ) -> None:
        self.gpt_path = Path(gpt_path)
        self.sovits_path = Path(sovits_path)
        self.model_dir = Path(model_dir)
        self.device_pref = device
        self.cache = cache or ModelCache()
        self.scorers = dict(scorers or {})
        self.reranker_loader = reranker_loader
        self.max_text = max_text
        self.turn = turn
        self.yield_turn = yield_turn
        from gpt_sovits.models.precisions import check_precision

        # "auto": the CPU fast path of the loaders (fastpath.py); "fp32": exact weights.
        self.precision = check_precision(precision)
        self._device: torch.device | None = None

    # -- models ----------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        if self._device is None:
            from gpt_sovits.device import DeviceError, pick_device

            try:
                self._device = pick_device(self.device_pref)
            except DeviceError as e:
                raise TTSInputError(str(e)) from None
        return self._device

    def _weights(self, path: Path, what: str) -> Path:
        if not path.is_file():
            from gpt_sovits import pretrained as models

            name = models.pretrained_name(self.model_dir, path)
            if name is not None:  # an official file: where it goes and how to get it
                raise TTSInputError(models.missing_message(name, self.model_dir))
            raise TTSInputError(f"{what} weights not found: {path}")
        return path

    def _load(self, kind: str, path: Path, loader: Callable[[], Any], extra: tuple = ()) -> Any:
        from gpt_sovits.models.weights import CheckpointError

        try:
            return self.cache.get(file_key(kind, path, self.device) + (self.precision, *extra), loader)
        except CheckpointError as e:
            raise TTSInputError(f"Cannot use {path.name}: {e}") from None

    def gpt(self) -> tuple[Text2Semantic, S1Config]:
        from gpt_sovits.models.weights import load_gpt

        path = self._weights(self.gpt_path, "GPT")
        return self._load("gpt", path, lambda: load_gpt(path, self.device, precision=self.precision))

    def sovits(self) -> tuple[SynthesizerTrn, S2Config]:
        """The SoVITS model and its config, any version: (SynthesizerTrn, S2Config) for v1-v2ProPlus,
        (SynthesizerTrnV3, S2V3Config) for v3/v4 (a LoRA export merged over model_dir's pretrained
        generator of its version)."""
        from gpt_sovits.infer.sovits import load_sovits, lora_base

        path = self._weights(self.sovits_path, "SoVITS")
        base = lora_base(path, self.model_dir)
        extra: tuple = ()
        if base is not None:  # a v3/v4 LoRA export: merged over the pretrained generator
            if not base.is_file():
                from gpt_sovits import pretrained as models

                version = "v3" if base.name == "s2Gv3.pth" else "v4"
                raise TTSInputError(
                    f"{path.name} is a SoVITS {version} LoRA export: it loads over the pretrained {version} "
                    f"generator. {models.missing_message(f'sovits-{version}', self.model_dir)} "
                    f"(`python -m gpt_sovits.pretrained download {version}` fetches every {version} file.)"
                )
            extra = clip_identity(base)
        return self._load(
            "sovits",
            path,
            lambda: load_sovits(path, self.device, precision=self.precision, base=base),
            extra,
        )

    def is_v3v4(self) -> bool:
        """Whether the SoVITS model is v3/v4 (flow matching + vocoder)."""
        from gpt_sovits.infer.sovits import V3V4_VERSIONS

        return self.model_version() in V3V4_VERSIONS

    def output_rate(self) -> int:
        """The sample rate of the audio this model makes: 32 kHz (v1-v2ProPlus), 24 kHz (v3), 48 kHz (v4)."""
        from gpt_sovits.models.s2v3 import PROFILES

        version = self.model_version()
        return PROFILES[version].output_rate if version in PROFILES else DATASET_RATE

    def vocoder(self) -> Any:
        """The vocoder of a v3/v4 model (BigVGAN folder / vocoder.pth under model_dir), loaded once into
        the cache; missing -> one TTSInputError naming the file, where it goes and how to get it."""
        from gpt_sovits import pretrained as models
        from gpt_sovits.infer.sovits import vocoder_file, vocoder_path
        from gpt_sovits.models.weights_v3 import load_vocoder

        version = self.model_version()
        folder, probe = vocoder_path(self.model_dir, version), vocoder_file(self.model_dir, version)
        if not probe.is_file():
            raise TTSInputError(
                f"{self.sovits_path.name} is a SoVITS {version} model: it needs its vocoder "
                f"({'the BigVGAN folder' if version == 'v3' else 'vocoder.pth'}) at {folder}. "
                f"{models.missing_message(f'vocoder-{version}', self.model_dir)} "
                f"(`python -m gpt_sovits.pretrained download {version}` fetches every {version} file.)"
            )
        return self._load(
            "vocoder", probe, lambda: load_vocoder(version, folder, self.device, self.precision)
        )

    def sample_steps(self, request: SynthesisRequest) -> int:
        """The CFM steps for ``request`` (v3/v4): its ``sample_steps``, or the version's default when 0.

        Values outside 1-128 (v3) / 1-32 (v4), the largest of the reference's choices, are refused."""
        from gpt_sovits.models.s2v3 import PROFILES

        version = self.model_version()
        profile = PROFILES.get(version)
        steps = int(request.sample_steps)
        if profile is None:
            return 0  # v1-v2ProPlus: no CFM, the knob is ignored
        if steps == 0:
            return profile.default_steps
        top = max(profile.step_choices)
        if not 1 <= steps <= top:
            raise TTSInputError(
                f"sample_steps must be between 1 and {top} for a SoVITS {version} model (0: its default, "
                f"{profile.default_steps}), got {steps}"
            )
        return steps

    def g2pw(self, version: str) -> Any:
        """The G2PW polyphone model of model_dir for Chinese v2 pinyin (as the reference), else None.

        Loaded once per folder into the cache; None (pypinyin) when it is not installed, with a logged reason.
        """
        if version != "v2":
            return None
        from gpt_sovits.text import load_g2pw

        return self.cache.get(("g2pw", str(self.model_dir.resolve())), lambda: load_g2pw(self.model_dir))

    def feature_folder(self, kind: str) -> Path:
        """The HuBERT ("hubert") or BERT ("bert") folder under model_dir, in the official names."""
        from gpt_sovits.models.features import BERT_FOLDER, HUBERT_FOLDER

        return self.model_dir / (HUBERT_FOLDER if kind == "hubert" else BERT_FOLDER)

    def feature_key(self, kind: str) -> tuple:
        """The cache key of a feature model (lets a benchmark place an in-memory model in the cache)."""
        return (kind, str(self.feature_folder(kind).resolve()), str(self.device))

    def _feature_model(self, kind: str) -> Any:
        from gpt_sovits.models.features import FeatureModelNotFoundError, load_bert, load_hubert

        folder = self.feature_folder(kind)
        load = load_hubert if kind == "hubert" else load_bert
        try:
            return self.cache.get(self.feature_key(kind), lambda: load(folder, self.device))
        except FeatureModelNotFoundError as e:
            raise TTSInputError(str(e)) from None

    def model_version(self) -> str:
        """The SoVITS model's version: v1, v2, v2Pro, v2ProPlus, v3 or v4 (shown by the CLI and the tab)."""
        return self.sovits()[1].version

    def version(self) -> str:
        """The text-frontend (symbol) version, after checking that the GPT model reads those phones.

        As the reference (TTS.py loads GPT and SoVITS independently and cuts the text with the SoVITS
        model's symbols), any GPT whose phone vocabulary fits the SoVITS model's symbol table goes: a
        v2Pro/v2ProPlus SoVITS with s1v3.ckpt (the reference's pairing), the v2 GPT or a GPT fine-tuned
        from either; a v1 GPT (vocabulary 512) with a v2-family SoVITS, or the reverse, is refused.
        """
        from gpt_sovits.pretrained import symbol_version

        _, gcfg = self.gpt()
        _, scfg = self.sovits()
        gpt_version = "v2" if gcfg.phoneme_vocab_size >= 732 else "v1"
        text_version = symbol_version(scfg.version)
        if gpt_version != text_version:
            raise TTSInputError(
                f"The GPT weights {self.gpt_path.name} are {gpt_version} (phone vocabulary "
                f"{gcfg.phoneme_vocab_size}) but the SoVITS weights {self.sovits_path.name} are "
                f"{scfg.version} (the {text_version} phone set); choose a GPT of the {text_version} phone set "
                f"({'the v1 GPT' if text_version == 'v1' else 'the v2 GPT, s1v3.ckpt or one fine-tuned from them'}) "
                "or SoVITS weights that match the GPT."
            )
        return text_version

    def uses_sv(self) -> bool:
        """Whether the SoVITS model takes the SV embedding (v2Pro, v2ProPlus)."""
        from gpt_sovits.pretrained import uses_sv

        return uses_sv(self.model_version())

    def sv_path(self) -> Path:
        """The speaker-verification model file under model_dir (official name)."""
        from gpt_sovits.pretrained import SV_FILE

        return self.model_dir / SV_FILE

    def sv_model(self) -> Any:
        """The SV model (ERes2NetV2), loaded once into the cache; missing -> one TTSInputError naming
        the file, where it goes and how to get it."""
        from gpt_sovits import pretrained as models
        from gpt_sovits.models.sv import load_sv
        from gpt_sovits.models.weights import CheckpointError

        path = self.sv_path()
        if not path.is_file():
            raise TTSInputError(
                f"{self.sovits_path.name} is a SoVITS {self.model_version()} model: it needs the "
                f"speaker-verification model. {models.missing_message(models.SV_NAME, self.model_dir)}"
            )
        try:
            return self.cache.get(file_key("sv", path, self.device), lambda: load_sv(path, self.device))
        except CheckpointError as e:
            raise TTSInputError(f"Cannot use the speaker-verification model {path.name}: {e}") from None

    # -- steps -----------------------------------------------------------------------------------

    @staticmethod
    def _wav32(samples: np.ndarray, sr: int) -> torch.Tensor:
        """The clip as S2 hears it: 32 kHz (N32,) float32, divided by min(2, peak) when the peak is above 1."""
        from core.audio import resample

        wav32 = torch.from_numpy(resample(samples, sr, DATASET_RATE).copy())
        peak = float(wav32.abs().max())
        if peak > 1:
            wav32 = wav32 / min(2.0, peak)
        return wav32

    def _spec(self, samples: np.ndarray, sr: int) -> torch.Tensor:
        from gpt_sovits.models.features import spectrogram

        return spectrogram(self._wav32(samples, sr).unsqueeze(0)).to(self.device)  # (1, 1025, T)

    def _sv_embedding(self, samples: np.ndarray, sr: int) -> torch.Tensor:
        """The SV embedding (1, 20480) fp32 of a clip, from the same 32 kHz audio as its spectrogram."""
        from gpt_sovits.models.sv import sv_embedding_of_wav32k

        return sv_embedding_of_wav32k(self.sv_model(), self._wav32(samples, sr).numpy()).to(self.device)

    def prepare_reference(self, request: SynthesisRequest) -> _Reference:
        """Check the reference(s); prompt tokens via HuBERT + extract_latent unless reference-free.

        Prepared references of files are cached (keyed by path, size and mtime of every clip, the mode
        and the SoVITS weights), as the reference's prompt cache: synthesising several texts with one
        reference runs HuBERT once.
        """
        if request.ref_audio is None or (isinstance(request.ref_audio, str) and not request.ref_audio):
            raise TTSInputError("A reference clip (3-10 s of the voice to clone) is needed.")
        clips = [request.ref_audio, *request.aux_refs]
        with_prompt = bool(request.ref_text.strip())
        if self.is_v3v4():
            self._check_v3v4_reference(request, with_prompt)
        if all(isinstance(c, (str, Path)) and Path(c).is_file() for c in clips):
            ids = tuple(clip_identity(Path(c)) for c in clips)  # type: ignore[arg-type]
            sovits_key = file_key("sovits", self._weights(self.sovits_path, "SoVITS"), self.device)
            key = ("ref", ids, with_prompt, sovits_key, self.feature_key("hubert"))
            if self.uses_sv():  # the SV embeddings are cached with it: a replaced SV model redoes them
                path = self.sv_path()
                key += (file_key("sv", path, self.device) if path.is_file() else ("sv", "missing"),)
            return self.cache.get(key, lambda: self._prepare_reference(request, with_prompt))
        return self._prepare_reference(request, with_prompt)

    def _check_v3v4_reference(self, request: SynthesisRequest, with_prompt: bool) -> None:
        """v3/v4 need the reference text and take one reference clip, as in the reference."""
        version = self.model_version()
        if not with_prompt:
            raise TTSInputError(
                f"{self.sovits_path.name} is a SoVITS {version} model: it needs the text of the reference "
                "(the reference-free mode is for v1/v2/v2Pro/v2ProPlus only, as in GPT-SoVITS). Type what "
                "the reference clip says."
            )
        if request.aux_refs:
            raise TTSInputError(
                f"{self.sovits_path.name} is a SoVITS {version} model: it takes its timbre from the main "
                f"reference only; remove the {len(request.aux_refs)} extra reference(s) (they are for "
                "v1/v2/v2Pro/v2ProPlus, as in GPT-SoVITS)."
            )

    def _reference_mel(self, samples: np.ndarray, sr: int) -> torch.Tensor:
        """v3/v4: the clip's log-mel (1, 100, T) at the profile's mel rate (CPU), the CFM's prompt mel."""
        from core.audio import resample
        from gpt_sovits.models.s2v3 import PROFILES, reference_mel

        version = self.model_version()
        wav = torch.from_numpy(resample(samples, sr, PROFILES[version].mel_rate).copy())
        return reference_mel(wav, version)

    def _prepare_reference(self, request: SynthesisRequest, with_prompt: bool) -> _Reference:
        from core.audio import resample
        from gpt_sovits.models.features import hubert_features

        samples, sr = read_reference(request.ref_audio)  # type: ignore[arg-type]
        check_reference(samples, sr)
        use_sv = self.uses_sv()
        if use_sv:
            self.sv_model()  # a missing SV model is said once, before any work
        specs = [self._spec(samples, sr)]
        sv = [self._sv_embedding(samples, sr)] if use_sv else None
        for aux in request.aux_refs:
            a, asr = read_reference(aux)
            if a.size < 0.5 * asr or float(np.max(np.abs(a))) < 1e-3:
                raise TTSInputError(f"The extra reference {describe(aux)} is silent or shorter than 0.5 s.")
            specs.append(self._spec(a, asr))
            if sv is not None:  # one embedding per reference, as the reference's refer_spec list
                sv.append(self._sv_embedding(a, asr))
        prompt = None
        if with_prompt:
            sovits, _ = self.sovits()
            hubert = self._feature_model("hubert")
            wav16 = torch.from_numpy(resample(samples, sr, HUBERT_RATE).copy())
            # As the reference: 0.3 s x 32000 zeros appended to the 16 kHz clip before HuBERT.
            wav16 = torch.cat([wav16, torch.zeros(int(DATASET_RATE * 0.3))])
            with torch.inference_mode(), autocast_for(self.device):
                ssl = hubert_features(hubert, wav16.unsqueeze(0)).float()  # (1, 768, T50)
                codes = sovits.extract_latent(ssl.to(next(sovits.parameters()).dtype))  # (1, 1, T25)
            prompt = codes[0, 0].long()
        mel = self._reference_mel(samples, sr) if self.is_v3v4() else None
        return _Reference(prompt, specs, sv, mel)

    def _bert(self, segments: list[Any]) -> torch.Tensor:
        from gpt_sovits.models.features import FeatureInputError, phone_bert_features

        feats = []
        for s in segments:
            bert = self._feature_model("bert") if s.language == "zh" else None
            try:
                feats.append(phone_bert_features(bert, s.language, s.norm_text, s.word2ph, len(s.phones)))
            except FeatureInputError as e:
                raise TTSInputError(f"Cannot read {s.text!r}: {e}") from None
        return torch.cat(feats, dim=1)  # (1024, n_phones)

    def _scorers(self, request: SynthesisRequest) -> dict[str, tuple[Scorer, float]]:
        scorers = dict(self.scorers)
        if request.clvp_path:
            scorers["clvp"] = (self._reranker(Path(request.clvp_path)), request.clvp_weight)
        return scorers

    def _reranker(self, path: Path) -> Scorer:
        """The reranker of checkpoint ``path`` (loaded once into the cache) as a scorer whose errors are
        TTSInputErrors."""
        if not path.is_file():
            raise TTSInputError(f"CLVP checkpoint not found: {path}")
        load = self.reranker_loader
        if load is None:
            raise TTSInputError("CLVP reranking is not available in this installation.")
        try:
            scorer = self.cache.get(file_key("clvp", path, self.device), lambda: load(path, self.device))
        except UserError as e:
            raise TTSInputError(f"Cannot use the CLVP checkpoint {path.name}: {e}") from None

        def rerank(phones: list[int], cands: list[list[int]]) -> list[float]:
            try:
                return scorer(phones, cands)
            except UserError as e:
                raise TTSInputError(f"CLVP could not score the candidates: {e}") from None

        return rerank

    # -- audio blends (gpt_sovits.infer.blends) ------------------------------------------------------------

    def whisper(self, model: str | None = None) -> Any:
        """The faster-whisper model for ASR agreement, loaded once into the cache; never downloads.

        ``model``: a size name (looked up as ``<model_dir>/faster-whisper-<size>`` then the Hugging Face
        cache) or a CTranslate2 folder; None: the first local ``faster-whisper-*`` folder of model_dir.
        A missing model raises TTSInputError with the ASR stage's message (where to put it, how to get it).
        """
        from gpt_sovits.infer.blends import resolve_whisper
        from tools.asr import ModelLoadError, ModelNotFoundError, load_whisper

        device = "cuda" if self.device.type == "cuda" else "cpu"
        try:
            name = resolve_whisper(model, self.model_dir)
            key = ("whisper", name, str(self.model_dir.resolve()), device)
            return self.cache.get(key, lambda: load_whisper(name, device=device, model_dir=self.model_dir))
        except (ModelNotFoundError, ModelLoadError) as e:
            raise TTSInputError(f"ASR agreement needs a local faster-whisper model: {e}") from None

    def reference_embedding(
        self, specs: Sequence[torch.Tensor], sv: Sequence[torch.Tensor] | None = None
    ) -> np.ndarray:
        """S2's style vector ``ge`` (gin,) of the reference(s), averaged over clips as ``decode`` does.

        `sv`: v2Pro/v2ProPlus only, one SV embedding (1, 20480) per spectrogram (their ``ge`` includes it)."""
        sovits, _ = self.sovits()
        dtype = next(sovits.parameters()).dtype
        svs: Sequence[torch.Tensor | None] = [None] * len(specs) if sv is None else sv
        with torch.inference_mode(), autocast_for(self.device):
            ges = [
                sovits.style(s.to(self.device, dtype), **({} if e is None else {"sv_emb": e.to(self.device)}))
                for s, e in zip(specs, svs, strict=True)
            ]
            ge = torch.stack(ges, 0).mean(0)
        return ge.float().reshape(-1).cpu().numpy()

    def speaker_embedding(self, audio: np.ndarray, sample_rate: int = DATASET_RATE) -> np.ndarray:
        """S2's style vector ``ge`` (gin,) of a clip (float32 mono): the timbre vector S2 conditions on."""
        sv = [self._sv_embedding(audio, sample_rate)] if self.uses_sv() else None
        return self.reference_embedding([self._spec(audio, sample_rate)], sv)

    def _audio_blends(
        self,
        piece: Piece,
        infos: list[CandidateInfo],
        specs: list[torch.Tensor],
        request: SynthesisRequest,
        seed: int,
        index: int,
        whisper: Any,
        ref_embedding: np.ndarray | None,
        timings: dict[str, float],
        sv: list[torch.Tensor] | None = None,
        v3: Any = None,
    ) -> tuple[int, dict[int, np.ndarray]]:
        """Decode every usable candidate, add the weighted "asr"/"speaker" scores to its total, re-pick.

        Returns (chosen index, {candidate index: its audio}). The audio uses the piece's seeded S2 noise,
        so it is exactly what the final decode (or ``candidate_audio``) would give and can be reused.
        """
        from gpt_sovits.infer.blends import (
            agreement_score,
            cosine,
            model_languages,
            transcribe,
            whisper_language,
        )

        usable = [j for j, c in enumerate(infos) if c.tokens]
        if len(usable) < 2:
            return best_candidate(infos), {}
        t0 = time.perf_counter()
        rate = self.output_rate()
        audios = {
            j: self._decode(infos[j].tokens, piece.phones, specs, request, seed, index, sv, v3)
            for j in usable
        }
        timings["s2"] = timings.get("s2", 0.0) + time.perf_counter() - t0
        if whisper is not None and request.asr_weight > 0:
            t1 = time.perf_counter()
            language = whisper_language(request.text_lang, model_languages(whisper))
            for j in usable:
                heard = transcribe(whisper, audios[j], rate, language)
                score = agreement_score(piece.text, heard, request.text_lang)
                infos[j].scores["asr"] = score
                infos[j].total += request.asr_weight * score
            timings["asr"] = timings.get("asr", 0.0) + time.perf_counter() - t1
        if ref_embedding is not None and request.speaker_weight > 0:
            t2 = time.perf_counter()
            for j in usable:
                score = cosine(self.speaker_embedding(audios[j], rate), ref_embedding)
                infos[j].scores["speaker"] = score
                infos[j].total += request.speaker_weight * score
            timings["speaker"] = timings.get("speaker", 0.0) + time.perf_counter() - t2
        return best_candidate(infos), audios

    def _decode(
        self,
        tokens: list[int],
        phones: list[int],
        specs: list[torch.Tensor],
        request: SynthesisRequest,
        seed: int,
        index: int,
        sv: list[torch.Tensor] | None = None,
        v3: Any = None,
    ) -> np.ndarray:
        """S2: one piece's tokens + target phones -> (samples,) float32 at ``output_rate()``, peak-normalised
        when above 1.

        `sv`: one SV embedding (1, 20480) per spectrogram for v2Pro/v2ProPlus (None for v1/v2). `v3`: the
        CFM prompt (s2v3.V3Prompt) of v3/v4 models, which decode through the CFM and the vocoder."""
        sovits, _ = self.sovits()
        dev = self.device
        codes = torch.tensor(tokens, dtype=torch.long, device=dev).view(1, 1, -1)
        text = torch.tensor(phones, dtype=torch.long, device=dev).unsqueeze(0)
        if self.is_v3v4():
            wav = self._decode_v3v4(sovits, codes, text, request, seed, index, v3)
        else:
            extra = {} if sv is None else {"sv_emb": [e.to(dev) for e in sv]}
            with torch.inference_mode(), autocast_for(dev):
                wav = sovits.decode(
                    codes,
                    text,
                    [s.to(dev) for s in specs],
                    noise_scale=request.noise_scale,
                    speed=request.speed,
                    generator=_noise_generator(seed, index),
                    **extra,
                )
        audio = wav[0, 0].float().cpu().numpy()
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak > 1:
            audio = audio / peak
        return audio.astype(np.float32, copy=False)

    def _decode_v3v4(
        self,
        sovits: Any,
        codes: torch.Tensor,
        text: torch.Tensor,
        request: SynthesisRequest,
        seed: int,
        index: int,
        v3: Any,
    ) -> torch.Tensor:
        """v3/v4: conditioning -> chunked CFM (seeded per piece) -> vocoder; (1, 1, samples)."""
        from gpt_sovits.models.s2v3 import infer_mel

        if v3 is None:
            raise TTSInputError("This v3/v4 result carries no reference prompt to decode with.")
        vocoder = self.vocoder()
        dev = self.device
        steps = self.sample_steps(request)
        with torch.inference_mode(), autocast_for(dev):
            mel = infer_mel(
                sovits,
                v3.to(dev),
                codes,
                text,
                steps,
                speed=request.speed,
                generator=_noise_generator(seed, index),
            )
            dtype = next(vocoder.parameters()).dtype
            return vocoder(mel.to(dtype))

    def _v3v4_prompt(self, ref: _Reference, prompt: _Prompt) -> Any:
        """The CFM prompt (s2v3.V3Prompt, on the model device) of a reference and its prompt text."""
        from gpt_sovits.models.s2v3 import prompt_condition

        sovits, _ = self.sovits()
        dev = self.device
        if ref.prompt is None or ref.mel is None:
            raise TTSInputError("v3/v4 models need the reference text (no reference-free mode).")
        cached = ref.v3_prompts.get(tuple(prompt.phones))
        if cached is not None:
            return cached
        codes = ref.prompt.to(dev).view(1, 1, -1)
        phones = torch.tensor(prompt.phones, dtype=torch.long, device=dev).unsqueeze(0)
        with torch.inference_mode(), autocast_for(dev):
            v3 = prompt_condition(sovits, codes, phones, ref.specs[0].to(dev), ref.mel.to(dev))
        ref.v3_prompts[tuple(prompt.phones)] = v3
        return v3

    # -- public ----------------------------------------------------------------------------------

    def _validate(self, request: SynthesisRequest) -> SamplingParams:
        from gpt_sovits.models.sampling import SamplingError, SamplingParams

        check_ranges(request)  # the ranges of gpt_sovits.infer.request.SYNTHESIS_PARAMS
        force = int(request.force_tokens)
        params = SamplingParams(
            top_k=int(request.top_k),
            top_p=float(request.top_p),
            temperature=float(request.temperature),
            repetition_penalty=float(request.repetition_penalty),
            eos_ban_steps=force if force > 0 else 11,
            max_new_tokens=force if force > 0 else int(request.max_new_tokens),
        )
        try:
            params.validate()
        except SamplingError as e:
            raise TTSInputError(str(e)) from None
        return params

    def _prompt(self, request: SynthesisRequest, ref: _Reference, version: str, g2pw: Any) -> _Prompt:
        """The prompt text's phones and BERT (1024, n), prepended to every piece; empty without a prompt.

        Cached by text, language, version and BERT model: texts synthesised one after another with one
        reference run BERT over its text once (BERT-large on 2 CPU cores: 0.16-0.18 s of every request for
        a reference text of 7-11 characters, bench/README.md).
        """
        if ref.prompt is None:
            return _Prompt([], torch.zeros(1024, 0))
        ref_lang = request.ref_lang.strip().lower()
        key = ("prompt", request.ref_text, ref_lang, version, g2pw is not None, self.feature_key("bert"))
        return self.cache.get(key, lambda: self._prompt_features(request.ref_text, ref_lang, version, g2pw))

    def _prompt_features(self, ref_text: str, ref_lang: str, version: str, g2pw: Any) -> _Prompt:
        """What ``_prompt`` caches: the phones and BERT features of ``ref_text``."""
        # As the reference: the whole prompt text, ended with a stop, without cutting.
        prompt = text_phones(prompt_text(ref_text, ref_lang), ref_lang, version, g2pw)
        if not has_words(prompt):
            raise TTSInputError(
                "The reference text has no words; give what the reference says, or leave it empty "
                "for the reference-free mode."
            )
        return _Prompt(prompt.phones, self._bert(prompt.segments))

    def _plan(self, request: SynthesisRequest, state: _RunState) -> _Plan:
        """Everything checked and prepared before S1 runs: cheap checks first, then the models."""
        params = self._validate(request)
        seed = int(request.seed)
        if seed < 0:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))
        t0 = time.perf_counter()
        text_lang = request.text_lang.strip().lower()
        # Cheap checks of the text before any model loads; phones need the SoVITS model's version.
        split_text(request.text, text_lang, request.cut)
        version = self.version()
        g2pw = self.g2pw(version)
        pieces = text_pieces(request.text, text_lang, request.cut, version, g2pw)
        ref = self.prepare_reference(request)
        state.specs = [s.cpu() for s in ref.specs]  # kept for reassemble()
        state.sv = None if ref.sv is None else [e.cpu() for e in ref.sv]
        prompt = self._prompt(request, ref, version, g2pw)
        v3 = None
        if self.is_v3v4():
            self.sample_steps(request)  # out of the version's range: refused before S1 runs
            self.vocoder()  # a missing vocoder is said before S1 runs
            v3 = self._v3v4_prompt(ref, prompt)
            state.v3 = v3.to("cpu")
        state.timings["reference"] = time.perf_counter() - t0
        plan = _Plan(request, params, seed, pieces, ref, prompt, self._scorers(request), t0, v3=v3)
        # Audio blends need at least two candidates; the Whisper model is checked before S1 runs.
        plan.blend = int(request.candidates) >= 2 and (request.asr_weight > 0 or request.speaker_weight > 0)
        if plan.blend and request.asr_weight > 0:
            plan.whisper = self.whisper(request.asr_model)
        if plan.blend and request.speaker_weight > 0:
            plan.ref_embedding = self.reference_embedding(ref.specs, ref.sv)
        return plan

    def _sample(self, plan: _Plan, batch: list[int], index: int, timings: dict[str, float]) -> list[Any]:
        """S1 on one batch of pieces: each piece's candidates (``Candidate`` objects)."""
        gpt, _ = self.gpt()
        t1 = time.perf_counter()
        for i in batch:
            plan.pieces[i].bert = self._bert(plan.pieces[i].segments)
        phones = [torch.tensor(plan.prompt.phones + plan.pieces[i].phones, dtype=torch.long) for i in batch]
        berts = [torch.cat([plan.prompt.bert, plan.pieces[i].bert], dim=1) for i in batch]
        gen = torch.Generator(device=self.device).manual_seed(plan.seed + index)
        n = int(plan.request.candidates)
        between = {"between_steps": self.yield_turn} if self.yield_turn is not None else {}
        with autocast_for(self.device):
            out = gpt.generate(
                phones, berts, plan.ref.prompt, plan.params, num_candidates=n, generator=gen, **between
            )
        timings["s1"] = timings.get("s1", 0.0) + time.perf_counter() - t1
        return out.candidates

    def _choose(self, plan: _Plan, i: int, cands: list[Any], timings: dict[str, float]) -> SentenceResult:
        """Score piece i's candidates, pick one and decode it (reusing the blends' decoded audio)."""
        piece, request = plan.pieces[i], plan.request
        infos, chosen = select_candidates(piece.phones, cands, plan.scorers, request.logprob_weight)
        decoded: dict[int, np.ndarray] = {}
        if plan.blend:
            chosen, decoded = self._audio_blends(
                piece,
                infos,
                plan.ref.specs,
                request,
                plan.seed,
                i,
                plan.whisper,
                plan.ref_embedding,
                timings,
                plan.ref.sv,
                plan.v3,
            )
        audio = decoded.get(chosen)
        if audio is None:
            t3 = time.perf_counter()
            audio = self._decode(
                infos[chosen].tokens,
                piece.phones,
                plan.ref.specs,
                request,
                plan.seed,
                i,
                plan.ref.sv,
                plan.v3,
            )
            timings["s2"] = timings.get("s2", 0.0) + time.perf_counter() - t3
        return SentenceResult(piece.text, piece.phones, infos, chosen, audio, decoded)

    def _run(
        self, request: SynthesisRequest, progress: ProgressFn, state: _RunState
    ) -> Iterator[StreamChunk]:
        timings = state.timings
        check_lengths(request, self.max_text)  # before waiting for a turn
        with self.turn():
            plan = self._plan(request, state)
        n = len(plan.pieces)
        rate = self.output_rate()
        progress(0, n, f"{n} piece(s) to synthesise")
        done = 0
        if self._streams_parts(plan):
            for i in range(n):
                yield from self._stream_piece(plan, i, rate, timings)
                progress(i + 1, n, f"piece {i + 1}/{n} done")
            return
        # One turn per S1 batch and one per piece; none is held while the caller has a chunk.
        for b, batch in enumerate(_batches(n, self.rows_per_batch, request.candidates)):
            with self.turn():
                sampled = self._sample(plan, batch, b, timings)
            for i, cands in zip(batch, sampled, strict=True):
                with self.turn():
                    sentence = self._choose(plan, i, cands, timings)
                done += 1
                progress(done, n, f"piece {done}/{n} done")
                if "first_audio" not in timings:
                    timings["first_audio"] = time.perf_counter() - plan.started
                audio = np.concatenate([sentence.audio, self._pause(request, rate)])
                yield StreamChunk(i, n, sentence, audio, plan.seed, rate)

    def _streams_parts(self, plan: _Plan) -> bool:
        """Whether pieces come in parts while S1 runs: ``stream_tokens`` set, one candidate (nothing to
        choose between), a v1-v2ProPlus model (v3/v4's CFM decodes whole pieces, as the reference)."""
        request = plan.request
        return int(request.stream_tokens) > 0 and int(request.candidates) == 1 and not self.is_v3v4()

    def _stream_piece(
        self, plan: _Plan, i: int, rate: int, timings: dict[str, float]
    ) -> Iterator[StreamChunk]:
        """Piece i in parts: S1 decodes it alone (seeded by seed + i); after ``stream_tokens`` tokens, then
        after parts growing to 48 tokens, S2 gives out the frames settled so far
        (gpt_sovits.models.s2_stream); one turn per part."""
        from gpt_sovits.models.s2_stream import StreamingDecode

        request, piece = plan.request, plan.pieces[i]
        chunk = int(request.stream_tokens)
        gpt, _ = self.gpt()
        sovits, _ = self.sovits()
        dev = self.device
        between = {"between_steps": self.yield_turn} if self.yield_turn is not None else {}
        with self.turn():
            t1 = time.perf_counter()
            piece.bert = self._bert(piece.segments)
            phones = torch.tensor(plan.prompt.phones + piece.phones, dtype=torch.long)
            bert = torch.cat([plan.prompt.bert, piece.bert], dim=1)
            gen = torch.Generator(device=dev).manual_seed(plan.seed + i)
            steps = gpt.decode_steps([phones], [bert], plan.ref.prompt, plan.params, 1, gen, **between)
            text = torch.tensor(piece.phones, dtype=torch.long, device=dev).unsqueeze(0)
            extra = {} if plan.ref.sv is None else {"sv_emb": [e.to(dev) for e in plan.ref.sv]}
            with torch.inference_mode(), autocast_for(dev):
                ge = sovits.reference_style([s.to(dev) for s in plan.ref.specs], **extra)
            decoder = StreamingDecode(
                sovits, text, ge, request.noise_scale, request.speed, _noise_generator(plan.seed, i), chunk
            )
            timings["s1"] = timings.get("s1", 0.0) + time.perf_counter() - t1
        parts: list[np.ndarray] = []
        result = None
        while result is None:
            with self.turn():
                t1 = time.perf_counter()
                with autocast_for(dev):
                    while True:
                        try:
                            seen = next(steps)
                        except StopIteration as done:
                            result = done.value
                            tokens = result.candidates[0][0].tokens
                            break
                        if int(seen.n_tok[0]) >= decoder.due:
                            tokens = seen.tokens[0, : int(seen.n_tok[0])].cpu()
                            break
                t2 = time.perf_counter()
                timings["s1"] = timings.get("s1", 0.0) + t2 - t1
                if result is not None and not parts and tokens.numel() == 0:
                    audio = self._decode([], piece.phones, plan.ref.specs, request, plan.seed, i)
                else:
                    with torch.inference_mode(), autocast_for(dev):
                        audio = decoder.feed(tokens, final=result is not None).numpy()
                timings["s2"] = timings.get("s2", 0.0) + time.perf_counter() - t2
            if result is not None:
                break
            if audio.size:
                parts.append(audio)
                timings.setdefault("first_audio", time.perf_counter() - plan.started)
                yield StreamChunk(i, len(plan.pieces), None, audio, plan.seed, rate)
        parts.append(audio)
        infos, chosen = select_candidates(
            piece.phones, result.candidates[0], plan.scorers, request.logprob_weight
        )
        sentence = SentenceResult(piece.text, piece.phones, infos, chosen, np.concatenate(parts))
        timings.setdefault("first_audio", time.perf_counter() - plan.started)
        last = np.concatenate([audio, self._pause(request, rate)])
        yield StreamChunk(i, len(plan.pieces), sentence, last, plan.seed, rate)

    @staticmethod
    def _pause(request: SynthesisRequest, rate: int = DATASET_RATE) -> np.ndarray:
        return np.zeros(int(rate * request.pause), dtype=np.float32)

    def stream(self, request: SynthesisRequest, progress: ProgressFn = no_progress) -> Iterator[StreamChunk]:
        """Yield each piece (its result and audio with the pause) as soon as it is decoded; with
        ``stream_tokens`` (one candidate, v1-v2ProPlus) each piece in parts while S1 is still running.

        The pieces and their audio are exactly those of ``synthesize`` for the same request and seed.
        """
        yield from self._run(request, progress, _RunState())

    def synthesize(
        self,
        request: SynthesisRequest,
        progress: ProgressFn = no_progress,
        on_chunk: Callable[[StreamChunk], None] | None = None,
    ) -> SynthesisResult:
        """The whole text: every piece's candidates with their scores, and the joined audio (32 kHz; v3
        24 kHz, v4 48 kHz: ``sample_rate``).

        ``on_chunk`` is handed each piece as soon as it is decoded (as ``stream`` yields it), so a server
        can play the first sentences while later ones are generated and still get the whole result."""
        state = _RunState()
        t0 = time.perf_counter()
        chunks = []
        for chunk in self._run(request, progress, state):
            chunks.append(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
        timings = state.timings
        timings["total"] = time.perf_counter() - t0
        return SynthesisResult(
            sample_rate=chunks[0].sample_rate,
            audio=np.concatenate([c.audio for c in chunks]).astype(np.float32, copy=False),
            sentences=[c.sentence for c in chunks if c.sentence is not None],
            seed=chunks[0].seed,
            request=request,
            timings=timings,
            refer_specs=state.specs,
            refer_sv=state.sv,
            refer_v3=state.v3,
        )

    def candidate_audio(self, result: SynthesisResult, piece: int, candidate: int) -> np.ndarray:
        """Piece ``piece`` spoken with candidate ``candidate`` (same S2 noise as ``reassemble`` uses),
        without changing ``result``. Returns (samples,) float32 at ``result.sample_rate``, without the pause."""
        if result.request is None or not result.refer_specs:
            raise TTSInputError("This result cannot be re-decoded (it carries no request/reference).")
        if not 0 <= piece < len(result.sentences):
            raise TTSInputError(f"there are {len(result.sentences)} pieces; piece {piece + 1} does not exist")
        sentence = result.sentences[piece]
        if not 0 <= candidate < len(sentence.candidates):
            raise TTSInputError(
                f"piece {piece + 1} has {len(sentence.candidates)} candidates; "
                f"choice {candidate + 1} does not exist"
            )
        if candidate == sentence.chosen and sentence.audio is not None:
            return sentence.audio
        if candidate in sentence.decoded:  # same tokens, phones, references and seeded noise
            return sentence.decoded[candidate]
        tokens = sentence.candidates[candidate].tokens
        if not tokens:
            raise TTSInputError(f"candidate {candidate + 1} of piece {piece + 1} has no tokens to decode")
        with self.turn():
            return self._decode(
                tokens,
                sentence.phones,
                result.refer_specs,
                result.request,
                result.seed,
                piece,
                result.refer_sv,
                result.refer_v3,
            )

    def reassemble(self, result: SynthesisResult, choices: Sequence[int]) -> np.ndarray:
        """Audio with candidate ``choices[i]`` for piece i; only pieces whose choice changed are re-decoded.

        Updates ``result`` (chosen, per-piece audio, audio) in place and returns the new audio.
        """
        if result.request is None or not result.refer_specs:
            raise TTSInputError("This result cannot be re-assembled (it carries no request/reference).")
        if len(choices) != len(result.sentences):
            raise TTSInputError(f"{len(result.sentences)} pieces but {len(choices)} choices were given")
        new_audio = [
            self.candidate_audio(result, i, int(choice)) for i, choice in enumerate(choices)
        ]  # all checked and decoded before anything in result changes
        for sentence, choice, audio in zip(result.sentences, choices, new_audio, strict=True):
            sentence.chosen, sentence.audio = int(choice), audio
        pause = self._pause(result.request, result.sample_rate)
        result.audio = np.concatenate([np.concatenate([s.audio, pause]) for s in result.sentences]).astype(
            np.float32
        )
        return result.audio

    def regenerate(self, result: SynthesisResult, piece: int, seed: int) -> np.ndarray:
        """Draw piece ``piece``'s candidates again, S1 seeded by ``seed``; score, choose and decode them.

        The other pieces are kept as they are. S2's noise stays the one of ``result.seed`` for that piece,
        so ``candidate_audio`` and ``reassemble`` go on working on the new candidates. Updates ``result``
        (that sentence, the audio) in place and returns the new audio (samples,) float32 at its sample rate.
        """
        if result.request is None or not result.refer_specs:
            raise TTSInputError("This result cannot be regenerated (it carries no request/reference).")
        if not 0 <= piece < len(result.sentences):
            raise TTSInputError(f"there are {len(result.sentences)} pieces; piece {piece + 1} does not exist")
        state = _RunState()
        with self.turn():
            plan = self._plan(result.request, state)  # the prepared reference comes from the cache
        if [p.text for p in plan.pieces] != [s.text for s in result.sentences]:
            raise TTSInputError("The text is cut differently now; synthesise it again instead.")
        with self.turn():
            cands = self._sample(replace(plan, seed=int(seed)), [piece], 0, state.timings)[0]
        plan.seed = int(result.seed)  # S2 noise of the result, piece by piece
        with self.turn():
            result.sentences[piece] = self._choose(plan, piece, cands, state.timings)
        pause = self._pause(result.request, result.sample_rate)
        result.audio = np.concatenate([np.concatenate([s.audio, pause]) for s in result.sentences]).astype(
            np.float32
        )
        return result.audio
