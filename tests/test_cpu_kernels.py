"""S1's compiled decode-step kernels (gpt_sovits/models/cpu_kernels.py, kernels/*.c)."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from gpt_sovits.models import cpu_kernels
from gpt_sovits.models.fastpath import Int8Linear, fast_s1
from gpt_sovits.models.s1 import S1Config, Text2Semantic
from gpt_sovits.models.sampling import SamplingParams

# Where the kernel can be built: an AVX-512 x86 CPU with a C compiler. There it must load; elsewhere the
# fast path keeps torch's kernel, which the rest of test_fastpath.py covers.
BUILDABLE = cpu_kernels.avx512() and cpu_kernels.c_compiler() is not None
needs_kernel = pytest.mark.skipif(
    not BUILDABLE, reason="the int8 kernel needs an AVX-512 CPU and a C compiler"
)


@pytest.fixture(scope="module")
def kernel() -> cpu_kernels.CpuKernels:
    built = cpu_kernels.load()
    assert built is not None, "an AVX-512 machine with a C compiler must build the int8 kernel"
    return built


def _quantised(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-127, 128, (n, k), generator=g, dtype=torch.int8)
    return q, (torch.rand(n, generator=g) / 50 + 1e-3).to(torch.bfloat16)


@needs_kernel
@pytest.mark.parametrize("n, k", [(512, 512), (1536, 512), (512, 2048), (96, 32), (176, 64), (16, 48)])
@pytest.mark.parametrize("rows", [1, 3, 8, 9])
def test_the_kernel_gives_torchs_int8_product(kernel, n: int, k: int, rows: int) -> None:
    # Whole groups of 64 channels, a tail of 16-48 channels, or only a tail; row blocks of 4 with a rest.
    q, scale = _quantised(n, k, seed=n + k + rows)
    x = torch.randn(rows, k, generator=torch.Generator().manual_seed(rows)).to(torch.bfloat16)
    ours = kernel.linear(x, kernel.pack(q), scale.float(), n)
    theirs = torch.ops.aten._weight_int8pack_mm(x, q, scale)
    assert ours.shape == (rows, n) and ours.dtype == torch.bfloat16
    # The same fp32 sums in another order, each rounded to bf16 once: equal, or one bf16 step apart.
    step = theirs.float().abs() * 2**-7 + 1e-6
    assert ((ours.float() - theirs.float()).abs() <= step).all()
    assert (ours == theirs).float().mean() >= 0.98


@needs_kernel
@pytest.mark.parametrize("n, k", [(1536, 512), (96, 32)])
def test_the_fused_bias_and_relu_round_as_torchs_operators(kernel, n: int, k: int) -> None:
    # The decode step's calls: fp32 rows in, the bias (and ReLU) after the bf16 product, bit for bit.
    q, scale = _quantised(n, k, seed=7)
    packed, s32 = kernel.pack(q), scale.float()
    g = torch.Generator().manual_seed(8)
    x, bias = torch.randn(3, k, generator=g) * 3, torch.randn(n, generator=g)
    p = kernel.linear(x.to(torch.bfloat16), packed, s32, n)
    assert torch.equal(kernel.linear(x, packed, s32, n), p)  # fp32 rows are rounded to bf16 first
    fp32 = kernel.linear(x, packed, s32, n, bias, cpu_kernels.PLUS_BIAS)
    assert fp32.dtype == torch.float32 and torch.equal(fp32, torch.add(bias, p))
    rounded = kernel.linear(x, packed, s32, n, bias, cpu_kernels.PLUS_BIAS_ROUNDED)
    assert rounded.dtype == torch.bfloat16 and torch.equal(rounded, p.clone().add_(bias))
    relu = kernel.linear(x, packed, s32, n, bias, cpu_kernels.PLUS_BIAS_ROUNDED, relu=True)
    assert torch.equal(relu, p.clone().add_(bias).relu_()) and (relu == 0).any() and (relu > 0).any()
    with pytest.raises(TypeError, match="fp32 or bf16"):
        kernel.linear(x.double(), packed, s32, n)


@needs_kernel
def test_the_packed_layout_holds_every_weight_once(kernel) -> None:
    q, _ = _quantised(176, 32, seed=3)  # two groups of 64 and a tail of 48
    packed = kernel.pack(q)
    assert packed.shape == (176 * 32,) and packed.dtype == torch.int8
    assert torch.equal(packed[: 64 * 32].view(32, 64), q[:64].t())  # group 0: (K, 64)
    assert torch.equal(packed[2 * 64 * 32 :].view(32, 48), q[128:].t())  # the tail: (K, 48)


@needs_kernel
def test_the_kernel_runs_on_torchs_thread_pool(kernel) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert kernel.max_threads() == 1
        torch.set_num_threads(2)
        assert kernel.max_threads() == 2
    finally:
        torch.set_num_threads(before)


@needs_kernel
def test_fast_s1_decodes_through_the_kernel_as_through_torchs(kernel) -> None:
    torch.manual_seed(0)
    exact = Text2Semantic(
        S1Config(embedding_dim=64, hidden_dim=64, head=4, n_layer=2, linear_units=256)
    ).eval()
    ours, theirs = fast_s1(copy.deepcopy(exact)), fast_s1(copy.deepcopy(exact))
    linears = [m for m in theirs.modules() if isinstance(m, Int8Linear)]
    assert len(linears) == 8 and all(m.kernel is kernel for m in linears)
    for m in linears:
        m.kernel = None  # torch's _weight_int8pack_mm
    g = torch.Generator().manual_seed(1)
    phones, bert, prompt = torch.randint(0, 512, (12,), generator=g), torch.randn(1024, 12), torch.arange(20)
    params = SamplingParams(top_k=1, repetition_penalty=1.0, max_new_tokens=40, eos_ban_steps=40)
    for candidates in (1, 3):  # one row, and shared-prefix candidates
        a = ours.generate([phones], [bert], prompt, params, candidates, return_step_logits=True).candidates[0]
        b = theirs.generate([phones], [bert], prompt, params, candidates, return_step_logits=True).candidates[
            0
        ]
        assert [c.tokens.tolist() for c in a] == [c.tokens.tolist() for c in b]
        assert all(c.tokens.numel() == 40 for c in a)
        # Sums in another order: the logits move by bf16 roundings only.
        assert (
            max(float((ca.step_logits - cb.step_logits).abs().max()) for ca, cb in zip(a, b, strict=True))
            < 0.05
        )


@needs_kernel
@pytest.mark.parametrize("d, length", [(32, 210), (16, 1), (64, 37)])
def test_the_attention_kernel_gives_the_softmax_over_the_cache(kernel, d: int, length: int) -> None:
    # Views of a (B, H, capacity, D) bf16 cache, as the decode step passes them; q from the packed q/k/v.
    g = torch.Generator().manual_seed(d + length)
    cache = torch.randn(2, 3, 4, length + 9, d, generator=g).to(torch.bfloat16)  # (k/v, B, H, capacity, D)
    k, v = cache[0, :, :, :length], cache[1, :, :, :length]
    qkv = torch.randn(3, 3, 4, 1, d, generator=g).to(torch.bfloat16)  # (B, q/k/v, H, 1, D)
    q = qkv[:, 0]
    got = kernel.attend(q, k, v)
    exact = torch.softmax(q.float() @ k.float().transpose(-1, -2) / d**0.5, -1) @ v.float()  # (B, H, 1, D)
    assert got is not None and got.shape == (3, 4 * d) and got.dtype == torch.float32
    assert (got - exact.reshape(3, 4 * d)).abs().max() < 1e-5
    # torch's flash kernel rounds its weights to bf16; ours is at least as close to fp32.
    theirs = torch.nn.functional.scaled_dot_product_attention(q, k, v).float().reshape(3, 4 * d)
    assert (theirs - exact.reshape(3, 4 * d)).abs().max() >= (got - exact.reshape(3, 4 * d)).abs().max()
    # Layouts it does not take come back as None (the step keeps torch's kernel).
    assert kernel.attend(q, k.transpose(2, 3), v) is None
    assert kernel.attend(q.float(), k, v) is None


@needs_kernel
def test_a_decode_step_attends_through_the_kernel_where_no_mask_is_needed(kernel, monkeypatch) -> None:
    torch.manual_seed(0)
    model = fast_s1(Text2Semantic(S1Config(embedding_dim=64, hidden_dim=64, head=4, n_layer=2)).eval())
    assert model.fast_step.kernels is kernel
    calls: list[int] = []
    attend = kernel.attend
    monkeypatch.setattr(kernel, "attend", lambda q, k, v: calls.append(k.size(2)) or attend(q, k, v))
    params = SamplingParams(top_k=1, max_new_tokens=5, eos_ban_steps=5)
    phones, bert = torch.randint(0, 512, (9,)), torch.randn(1024, 9)
    model.generate([phones], [bert], torch.arange(20), params)
    # One sentence, one candidate: no mask, so every layer of the 4 steps after the prompt pass.
    assert calls == [len_ for len_ in range(30, 34) for _ in range(2)]
    calls.clear()
    model.generate([phones, phones[:6]], [bert, bert[:, :6]], torch.arange(20), params)
    assert calls == []  # left-padded sentences need a key mask: torch's kernel


@needs_kernel
def test_a_copied_or_pickled_fast_model_shares_the_processs_kernels(kernel) -> None:
    import pickle

    model = fast_s1(Text2Semantic(S1Config(embedding_dim=64, hidden_dim=64, head=4, n_layer=1)).eval())
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert twin.fast_step.kernels is kernel
        assert all(m.kernel is kernel for m in twin.modules() if isinstance(m, Int8Linear))


def test_a_failed_build_falls_back_to_torchs_kernel_with_a_warning(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(cpu_kernels, "BUILD_DIR", tmp_path / "kernels")
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    with caplog.at_level(logging.INFO, logger=cpu_kernels.__name__):
        assert cpu_kernels.load.__wrapped__() is None
    if BUILDABLE:
        assert "could not be built" in caplog.text
        assert not list((tmp_path / "kernels").glob("*"))  # no partial library left behind


@needs_kernel
def test_a_build_is_kept_and_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cpu_kernels, "BUILD_DIR", tmp_path / "kernels")
    assert cpu_kernels.load.__wrapped__() is not None
    (built,) = (tmp_path / "kernels").glob("decode_kernels-*.so")
    stamp = built.stat().st_mtime_ns
    assert cpu_kernels.load.__wrapped__() is not None
    assert built.stat().st_mtime_ns == stamp and len(list((tmp_path / "kernels").iterdir())) == 1
