"""vocoder_ext.WaveGlow against original_waveglow.py, an independent implementation of NVIDIA DLE's
WaveGlow written for the tests, with random weights (randomize: non-zero `end`, gains != |v|,
non-orthogonal 1x1 convs) in NVIDIA's 256-channel inference config and a small one.

Tolerances (fp32). The reference's own fp32 error against the same weights run in fp64 was measured
at <= 1.3e-6 of each tensor's largest magnitude (z, every log_s, infer audio; 3 seeds, both configs),
and the error is spread evenly over the elements (accumulated rounding of O(max) intermediates), so
elementwise rtol alone would fail near zero crossings. Hence `close`: rtol=1e-5 plus
atol = 1e-5 * max|want|, ~8x the reference's own error. log_det_W = B * n_groups * logdet(W) is a
scalar: atol = 1e-5 * B * n_groups (logdet of a c x c fp32 matrix is good to ~c * eps ~ 1e-6)."""
import os

import pytest
import torch

import vocoder_ext
from vocoder_ext.losses import waveglow_loss as our_loss
from original_waveglow import WaveGlow as OrigWaveGlow, randomize, waveglow_loss

CONFIGS = {
    "nvidia": dict(n_mel_channels=80, n_flows=12, n_group=8, n_early_every=4, n_early_size=2,
                   WN_config=dict(n_layers=8, n_channels=256, kernel_size=3)),
    "small": dict(n_mel_channels=80, n_flows=8, n_group=8, n_early_every=4, n_early_size=2,
                  WN_config=dict(n_layers=3, n_channels=16, kernel_size=3)),
}
TINY = dict(n_mel_channels=80, n_flows=4, n_group=8, n_early_every=2, n_early_size=2,
            WN_config=dict(n_layers=2, n_channels=8, kernel_size=3))
# (batch, mel frames): short, odd frame counts keep the 256-channel config fast on 2 CPU cores
SHAPES = {"nvidia": [(1, 3), (2, 3)], "small": [(1, 7), (3, 5)]}
SHORT = 8 * 13  # a training-style segment: this many samples fewer than the upsampled mel
SIGMAS = {"nvidia": [0.9], "small": [0.9, 1.0, 0.6]}


def close(got, want, rtol=1e-5, scale_tol=1e-5, msg=""):
    assert got.shape == want.shape, f"{msg}: shape {tuple(got.shape)} vs {tuple(want.shape)}"
    assert torch.isfinite(got).all(), f"{msg}: non-finite values"
    atol = scale_tol * want.detach().abs().max().item()
    torch.testing.assert_close(got.detach(), want.detach(), rtol=rtol, atol=atol,
                               msg=lambda m: f"{msg}: {m}")


def close_outputs(got, want, batch, n_groups, msg=""):
    """forward's (z, log_s_list, log_det_W_list), element by element."""
    z, log_s, log_det = got
    close(z, want[0], msg=f"{msg} z")
    assert len(log_s) == len(want[1]) and len(log_det) == len(want[2])
    for k, (g, w) in enumerate(zip(log_s, want[1])):
        close(g, w, msg=f"{msg} log_s[{k}]")
    for k, (g, w) in enumerate(zip(log_det, want[2])):
        torch.testing.assert_close(g.detach(), w.detach(), rtol=1e-5, atol=1e-5 * batch * n_groups,
                                   msg=lambda m: f"{msg} log_det_W[{k}]: {m}")


def new_seed():
    return int(torch.randint(0, 2 ** 31 - 1, ()))  # from conftest's random per-test seed


def reference(config):
    return randomize(OrigWaveGlow(**config), new_seed()).eval()


def ours_like(ref, config, fused=True):
    model = vocoder_ext.WaveGlow(**config, fused=fused).eval()
    model.load_state_dict(ref.state_dict())  # strict: the same keys as NVIDIA's
    return model


@pytest.fixture(scope="module")
def nvidia_models():
    """The 256-channel config takes seconds to build: one reference and our fused and unfused models
    for the whole module (no test changes their weights), random weights each run."""
    ref = randomize(OrigWaveGlow(**CONFIGS["nvidia"]), int.from_bytes(os.urandom(4), "little")).eval()
    return ref, {fused: ours_like(ref, CONFIGS["nvidia"], fused) for fused in (True, False)}


def models_for(name, request):
    """(reference, {fused: our model}) for a config name."""
    if name == "nvidia":
        return request.getfixturevalue("nvidia_models")
    ref = reference(CONFIGS[name])
    return ref, {fused: ours_like(ref, CONFIGS[name], fused) for fused in (True, False)}


@pytest.fixture
def no_tf32():
    """On a GPU, fp32 convolutions and matmuls in true fp32 (TF32 alone is ~1e-3)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def random_inputs(batch, frames, n_group=8):
    mel = torch.randn(batch, 80, frames)
    z = torch.randn(batch, n_group, frames * 256 // n_group)
    return mel, z


# ------------------------------------------------------------------------------------------------
# the reference checks itself

@pytest.mark.parametrize("name", ["nvidia", "small"])
def test_reference_infer_inverts_forward(name, request):
    """forward(mel, infer_with_noise(mel, 1, z)) gives z back, in forward's channel order (the
    early outputs of the first early stage first, the n_remaining_channels that start inference last)."""
    ref, _ = models_for(name, request)
    mel, z = random_inputs(2, 3)
    with torch.no_grad():
        audio = ref.infer_with_noise(mel, 1.0, z)
        assert audio.shape == (2, 3 * 256)
        z_back, log_s, _ = ref((mel, audio))
    assert max(s.abs().max() for s in log_s) > 0.05  # the couplings are not the identity
    close(z_back, ref.z_in_forward_order(z), scale_tol=2e-5, msg="round trip")
    # the channel order is not trivial: z itself does not come back
    assert (z_back - z).abs().max() > 0.1


# ------------------------------------------------------------------------------------------------
# our model against the reference, fp32

def test_state_dict_keys_are_nvidias(nvidia_models):
    ref, models = nvidia_models
    ours = models[True]
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert got == want
    for key in ("upsample.weight", "upsample.bias", "WN.0.start.weight_g", "WN.11.end.weight",
                "WN.3.cond_layers.7.weight_v", "WN.8.res_skip_layers.7.bias", "convinv.11.conv.weight"):
        assert key in got
    assert got["convinv.0.conv.weight"] == (8, 8, 1) and got["convinv.11.conv.weight"] == (4, 4, 1)
    assert got["WN.0.cond_layers.0.weight_v"] == (512, 640, 1)


@pytest.mark.parametrize("name", ["nvidia", "small"])
def test_forward_and_loss_match_reference(name, request):
    ref, models = models_for(name, request)
    for batch, frames in SHAPES[name]:
        mel = torch.randn(batch, 80, frames)
        # the whole mel's audio, and a training-style segment shorter than the upsampled mel
        # (a multiple of n_group with an odd number of groups)
        for n_samples in (frames * 256, frames * 256 - SHORT):
            audio = 0.5 * torch.randn(batch, n_samples)
            with torch.no_grad():
                want = ref((mel, audio))
                for fused, model in models.items():
                    tag = f"{name} B={batch} F={frames} T={n_samples} fused={fused}"
                    got = model(mel, audio)
                    close_outputs(got, want, batch, n_samples // 8, tag)
                    if name == "small":
                        close_outputs(model((mel, audio)), want, batch, n_samples // 8, tag + " tuple")
                    for sigma in (1.0, 0.7):
                        loss = our_loss(got, sigma=sigma)
                        torch.testing.assert_close(loss, waveglow_loss(want, sigma), rtol=1e-5, atol=1e-6,
                                                   msg=lambda m: f"{tag} loss sigma={sigma}: {m}")


@pytest.mark.parametrize("name", ["nvidia", "small"])
def test_infer_with_z_matches_reference(name, request):
    ref, models = models_for(name, request)
    for batch, frames in SHAPES[name]:
        mel, z = random_inputs(batch, frames)
        for sigma in SIGMAS[name]:
            with torch.no_grad():
                want = ref.infer_with_noise(mel, sigma, z)
                for fused, model in models.items():
                    got = model.infer(mel, sigma=sigma, z=z)
                    close(got, want, msg=f"{name} B={batch} F={frames} sigma={sigma} fused={fused}")


def test_forward_inverts_our_infer():
    config = CONFIGS["small"]
    ref = reference(config)
    ours = ours_like(ref, config)
    mel, z = random_inputs(3, 5)
    with torch.no_grad():
        z_back = ours(mel, ours.infer(mel, sigma=1.0, z=z))[0]
    close(z_back, ref.z_in_forward_order(z), scale_tol=2e-5, msg="round trip")


def test_loss_is_nvidias_and_does_not_modify_outputs():
    """NVIDIA's WaveGlowLoss adds into log_det_W_list[0] in place (`log_det_W_total += ...`), so a
    second call on the same outputs gives another value; ours must not."""
    ref = reference(CONFIGS["small"])
    mel = torch.randn(3, 80, 5)
    with torch.no_grad():
        outputs = ref((mel, 0.5 * torch.randn(3, 5 * 256)))
    before = [t.clone() for t in outputs[2]]
    for sigma in (1.0, 0.6, 1.0):
        torch.testing.assert_close(our_loss(outputs, sigma=sigma),
                                   waveglow_loss(outputs, sigma), rtol=1e-6, atol=1e-7)
    assert all(torch.equal(a, b) for a, b in zip(before, outputs[2]))
    torch.testing.assert_close(our_loss(outputs),
                               waveglow_loss(outputs, 1.0), rtol=1e-6, atol=1e-7)  # sigma defaults to 1


def test_training_gradients_match_reference():
    config = CONFIGS["small"]
    ref = reference(config).train()
    ours = ours_like(ref, config).train()
    mel = torch.randn(3, 80, 5)
    audio = 0.5 * torch.randn(3, 5 * 256 - SHORT)
    waveglow_loss(ref((mel, audio))).backward()
    our_loss(ours(mel, audio)).backward()
    want = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        # weight gradients sum over B * T: measured <= 1.3e-6 of each gradient's scale (4 seeds)
        close(p.grad, want[name].grad, scale_tol=2e-5, msg=name)


def test_infer_without_z_draws_like_nvidia():
    """With the same seed, our noise equals NVIDIA `infer`'s draws: randn(B, n_remaining, t) on the
    mel's device, then randn(B, n_early_size, t) per early stage; default sigma 0.9."""
    config = CONFIGS["small"]
    ref = reference(config)
    ours = ours_like(ref, config)
    mel = torch.randn(3, 80, 5)
    seed = new_seed()
    with torch.no_grad():
        for sigma in (0.8, None):
            torch.manual_seed(seed)
            want = ref.infer(mel, 0.9 if sigma is None else sigma)
            torch.manual_seed(seed)
            got = ours.infer(mel) if sigma is None else ours.infer(mel, sigma=sigma)
            close(got, want, msg=f"sigma={sigma}")


def test_sigma_zero_is_deterministic():
    config = CONFIGS["small"]
    ref = reference(config)
    ours = ours_like(ref, config)
    mel, z = random_inputs(3, 5)
    with torch.no_grad():
        want = ref.infer_with_noise(mel, 0.0, z)
        first = ours.infer(mel, sigma=0.0)
        assert torch.equal(first, ours.infer(mel, sigma=0.0))
        assert torch.equal(first, ours.infer(mel, sigma=0.0, z=z))
    assert want.abs().max() > 0  # the mel alone drives the output
    close(first, want, msg="sigma=0")


@pytest.mark.parametrize("method", ["remove_weightnorm", "remove_weight_norm"])
def test_remove_weight_norm_keeps_outputs(method):
    config = CONFIGS["small"]
    ref = reference(config)
    ours = ours_like(ref, config)
    mel, z = random_inputs(3, 5)
    audio = 0.5 * torch.randn(3, 5 * 256)
    with torch.no_grad():
        want_z = ref((mel, audio))[0]
        want_audio = ref.infer_with_noise(mel, 0.9, z)
        getattr(ours, method)()
        close(ours(mel, audio)[0], want_z, msg="forward after removal")
        close(ours.infer(mel, sigma=0.9, z=z), want_audio, msg="infer after removal")
    keys = set(ours.state_dict())
    assert not any(k.endswith(("weight_g", "weight_v")) for k in keys)
    assert keys == set(ref.remove_weightnorm().state_dict())


def test_fused_equals_unfused():
    config = CONFIGS["small"]
    ref = reference(config)
    fused, plain = ours_like(ref, config, True), ours_like(ref, config, False)
    mel, z = random_inputs(3, 5)
    audio = 0.5 * torch.randn(3, 5 * 256)
    with torch.no_grad():
        want = plain(mel, audio)
        close_outputs(fused(mel, audio), want, 3, 5 * 32, "fused vs unfused")
        close(our_loss(fused(mel, audio)), our_loss(want))
        close(fused.infer(mel, sigma=0.9, z=z), plain.infer(mel, sigma=0.9, z=z), msg="infer")


# ------------------------------------------------------------------------------------------------
# precision, devices, and the inverse 1x1 convs

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_infer(dtype, device, no_tf32):
    """After an fp32 infer (which may cache inverses), .half() / .to(bfloat16) infers at that dtype,
    finite. Error against the fp64 reference <= 2x the reference's own error at the same dtype (it
    inverts W in fp64 and casts, as NVIDIA's in fp32) + 2 eps of the output scale. Measured on CPU
    (4 seeds): ours/reference error ratio 0.48-0.60 in fp16 (~8e-4 of the scale), 0.29-0.70 in bf16
    (~5e-3 to 1.2e-2 of the scale)."""
    config = CONFIGS["small"]
    ref = reference(config).to(device)
    ours = ours_like(ref, config).to(device)
    mel, z = (t.to(device) for t in random_inputs(3, 5))
    exact = OrigWaveGlow(**config).to(device)
    exact.load_state_dict(ref.state_dict())
    with torch.no_grad():
        want = exact.double().infer_with_noise(mel.double(), 0.9, z.double())
        close(ours.infer(mel, sigma=0.9, z=z), want.float(), msg="fp32")
        ours = ours.half() if dtype == torch.float16 else ours.to(dtype)
        got = ours.infer(mel.to(dtype), sigma=0.9, z=z.to(dtype))
        baseline = ref.to(dtype).infer_with_noise(mel.to(dtype), 0.9, z.to(dtype))
    assert got.dtype == dtype and got.shape == want.shape
    assert torch.isfinite(got).all()
    err = (got.double() - want).abs().max().item()
    ref_err = (baseline.double() - want).abs().max().item()
    scale = want.abs().max().item()
    assert err <= 2 * ref_err + 2 * torch.finfo(dtype).eps * scale, (err, ref_err, scale)


def test_inverse_weights_are_never_stale():
    """NVIDIA caches W^-1 at first use; ours must follow every change of W: in-place edits and
    load_state_dict after an infer."""
    config = CONFIGS["small"]
    ref = reference(config)
    ours = ours_like(ref, config)
    mel, z = random_inputs(3, 5)
    with torch.no_grad():
        first = ours.infer(mel, sigma=0.9, z=z)
        for k in (0, 5):
            w = ours.convinv[k].conv.weight
            c = w.shape[0]
            new = w[:, :, 0] @ (torch.eye(c) + 0.1 * torch.randn(c, c))
            if torch.det(new) < 0:
                new[:, 0] = -new[:, 0]
            w.copy_(new.unsqueeze(-1))  # in place: same tensor, same version of the module
            ref.convinv[k].conv.weight.copy_(new.unsqueeze(-1))
        second = ours.infer(mel, sigma=0.9, z=z)
        close(second, ref.infer_with_noise(mel, 0.9, z), msg="after in-place edit")
        assert (second - first).abs().max() > 1e-3 * first.abs().max()
        other = reference(config)
        ours.load_state_dict(other.state_dict())
        close(ours.infer(mel, sigma=0.9, z=z), other.infer_with_noise(mel, 0.9, z), msg="after load_state_dict")


@CUDA
@pytest.mark.parametrize("name", ["nvidia", "small"])
def test_cuda_matches_reference(name, request, no_tf32):
    """Fused kernels on the GPU against the CPU reference, fp32 (forward, loss, infer)."""
    ref, _ = models_for(name, request)
    models = {fused: ours_like(ref, CONFIGS[name], fused).cuda() for fused in (True, False)}
    for batch, frames in SHAPES[name]:
        mel, z = random_inputs(batch, frames)
        audio = 0.5 * torch.randn(batch, frames * 256 - SHORT)
        with torch.no_grad():
            want = ref((mel, audio))
            want_audio = ref.infer_with_noise(mel, 0.9, z)
            for fused, model in models.items():
                tag = f"cuda {name} B={batch} F={frames} fused={fused}"
                got = model(mel.cuda(), audio.cuda())
                close_outputs([got[0].cpu(), [t.cpu() for t in got[1]], [t.cpu() for t in got[2]]], want,
                              batch, audio.shape[1] // 8, tag)
                torch.testing.assert_close(our_loss(got).cpu(), waveglow_loss(want), rtol=1e-5, atol=1e-6)
                close(model.infer(mel.cuda(), sigma=0.9, z=z.cuda()).cpu(), want_audio, msg=tag + " infer")


@CUDA
def test_device_move_after_infer(no_tf32):
    config = CONFIGS["small"]
    ref = reference(config)
    ours = ours_like(ref, config)
    mel, z = random_inputs(3, 5)
    with torch.no_grad():
        ours.infer(mel, sigma=0.9, z=z)  # on the CPU first
        want = ref.cuda().infer_with_noise(mel.cuda(), 0.9, z.cuda())
        ours.cuda()
        close(ours.infer(mel.cuda(), sigma=0.9, z=z.cuda()), want, scale_tol=1e-4, msg="cuda")
        ours.cpu()
        close(ours.infer(mel, sigma=0.9, z=z), want.cpu(), scale_tol=1e-4, msg="back on cpu")


# ------------------------------------------------------------------------------------------------
# bad inputs

BAD_MELS = [
    (torch.randn(80, 5), "wrong rank"),
    (torch.randn(1, 64, 5), "wrong channel count"),
    (torch.randn(1, 80, 5).index_fill_(2, torch.tensor([3]), float("nan")), "NaN"),
    (torch.randn(1, 80, 0), "zero frames"),
]


@pytest.mark.parametrize("entry", ["infer", "forward"])
@pytest.mark.parametrize("mel,why", BAD_MELS, ids=[why for _, why in BAD_MELS])
def test_bad_mel(entry, mel, why):
    model = vocoder_ext.WaveGlow(**TINY)
    with pytest.raises(ValueError, match=r"\bmel\b"):
        if entry == "infer":
            model.infer(mel, sigma=0.9)
        else:
            model(mel, torch.randn(1, 5 * 256))


BAD_Z = [
    (lambda z: z[:, :, :-1], "short time axis"),
    (lambda z: torch.cat([z, z[:, :, :1]], 2), "long time axis"),
    (lambda z: z[:, :6], "too few channels"),
    (lambda z: z.reshape(z.shape[0], -1), "wrong rank"),
    (lambda z: z[:1], "wrong batch"),
    (lambda z: z.round().long(), "integer dtype"),
    (lambda z: torch.empty_like(z, device="meta"), "other device"),
]


@pytest.mark.parametrize("make,why", BAD_Z, ids=[why for _, why in BAD_Z])
def test_bad_z(make, why):
    model = vocoder_ext.WaveGlow(**TINY)
    mel, z = random_inputs(3, 5)
    with pytest.raises((ValueError, TypeError), match=r"\bz\b"):
        model.infer(mel, sigma=0.9, z=make(z))


@pytest.mark.parametrize("sigma", [-0.5, float("nan")])
def test_bad_sigma(sigma):
    model = vocoder_ext.WaveGlow(**TINY)
    mel, z = random_inputs(1, 3)
    with pytest.raises(ValueError, match=r"\bsigma\b"):
        model.infer(mel, sigma=sigma, z=z)
    with pytest.raises(ValueError, match=r"\bsigma\b"):
        model.infer(mel, sigma=sigma)


# ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_compile_fullgraph_infer_matches_eager():
    ref = reference(TINY)
    model = ours_like(ref, TINY)
    mel, z = random_inputs(1, 5)
    with torch.no_grad():
        want = model.infer(mel, sigma=0.9, z=z)
        got = torch.compile(model.infer, fullgraph=True)(mel, sigma=0.9, z=z)
        close(got, want, msg="compiled")
        close(got, ref.infer_with_noise(mel, 0.9, z), msg="compiled vs reference")
