"""The check every vocoder runs on its mel input, with errors that say what was expected and what came."""
import torch


def check_mel(mel, num_mels, dtype):
    """mel [B, num_mels, T] (B, T >= 1, finite floats) -> mel in `dtype` (e.g. an fp32 mel into a .half() model)."""
    n = num_mels
    if not isinstance(mel, torch.Tensor):
        raise TypeError(f"mel: expected a torch.Tensor [B, {n}, T], got {type(mel).__name__}")
    if mel.dim() != 3:
        raise ValueError(f"mel: expected a 3-D tensor [B, {n}, T], got shape {tuple(mel.shape)}")
    if mel.shape[1] != n:
        raise ValueError(f"mel: expected {n} mel channels (shape [B, {n}, T]), got shape {tuple(mel.shape)}")
    if mel.shape[2] == 0 or mel.shape[0] == 0:
        raise ValueError(f"mel: expected at least one batch item and one frame, got shape {tuple(mel.shape)}")
    if not mel.is_floating_point():
        raise TypeError(f"mel: expected a floating-point tensor, got dtype {mel.dtype}")
    # Reading the flag back is a host sync, impossible while a CUDA graph is being captured.
    capturing = mel.is_cuda and torch.cuda.is_current_stream_capturing()
    if not torch.compiler.is_compiling() and not capturing and not bool(torch.isfinite(mel).all()):
        raise ValueError("mel: contains NaN or inf values")
    return mel if mel.dtype == dtype else mel.to(dtype)
