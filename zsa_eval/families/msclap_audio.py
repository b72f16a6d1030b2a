"""MS-CLAP's audio encoders, written from reading msclap 1.3.4's code: the log-mel front end (torchlibrosa's, as msclap
runs it: an STFT as two convolutions whose DFT kernels, and the mel filter bank, are weights of the checkpoint;
computed here when a checkpoint lacks them; float32 whatever the model's precision), CNN14 (2022) and HTSAT (2023: a
Swin transformer over the log-mel spectrogram cut into four time chunks stacked as a 256x256 image). Module names
mirror msclap's state dict."""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zsa_eval.families.msclap_config import MsClapConfig

AMIN = 1e-10  # torchlibrosa's power_to_db floor; msclap's ref is 1.0 (no offset) and top_db None (no clipping)
SWIN_MASK = -100.0  # the score HTSAT gives token pairs of a shifted window that come from different regions


# --- the log-mel front end (torchlibrosa's Spectrogram and LogmelFilterBank, as msclap builds them) ----------------

def dft_kernels(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The real and imaginary DFT kernels of a periodic-Hann-windowed frame, (n_fft // 2 + 1, 1, n_fft) each."""
    samples = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * samples / n_fft)
    angle = 2 * np.pi * (np.outer(np.arange(n_fft // 2 + 1), samples) % n_fft) / n_fft
    return (torch.tensor(np.cos(angle) * window, dtype=torch.float32)[:, None],
            torch.tensor(-np.sin(angle) * window, dtype=torch.float32)[:, None])


def mel_filters(sampling_rate: int, n_fft: int, mel_bins: int, fmin: float, fmax: float) -> torch.Tensor:
    """librosa.filters.mel's default (Slaney mel scale and area normalization), (n_fft // 2 + 1, mel_bins)."""
    from transformers.audio_utils import mel_filter_bank

    return torch.tensor(mel_filter_bank(n_fft // 2 + 1, mel_bins, fmin, fmax, sampling_rate, norm="slaney",
                                        mel_scale="slaney"), dtype=torch.float32)


class Stft(nn.Module):
    def __init__(self, n_fft: int, hop_size: int):
        super().__init__()
        self.n_fft = n_fft
        self.conv_real = nn.Conv1d(1, n_fft // 2 + 1, n_fft, stride=hop_size, bias=False)
        self.conv_imag = nn.Conv1d(1, n_fft // 2 + 1, n_fft, stride=hop_size, bias=False)
        real, imaginary = dft_kernels(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(real)
            self.conv_imag.weight.copy_(imaginary)
        self.requires_grad_(False)


class Spectrogram(nn.Module):
    def __init__(self, n_fft: int, hop_size: int):
        super().__init__()
        self.stft = Stft(n_fft, hop_size)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> power spectrogram (batch, 1, frames, n_fft // 2 + 1), in float32 at least: frames
        centred (reflect-padded by n_fft // 2), each the DFT of its windowed samples."""
        stft = self.stft
        dtype = torch.promote_types(stft.conv_real.weight.dtype, torch.float32)
        padded = F.pad(waveforms.to(dtype)[:, None], (stft.n_fft // 2, stft.n_fft // 2), mode="reflect")
        real = F.conv1d(padded, stft.conv_real.weight.to(dtype), stride=stft.conv_real.stride)
        imaginary = F.conv1d(padded, stft.conv_imag.weight.to(dtype), stride=stft.conv_imag.stride)
        return (real.square() + imaginary.square()).transpose(1, 2)[:, None]


class LogMel(nn.Module):
    def __init__(self, sampling_rate: int, n_fft: int, mel_bins: int, fmin: float, fmax: float):
        super().__init__()
        self.melW = nn.Parameter(mel_filters(sampling_rate, n_fft, mel_bins, fmin, fmax), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """Power spectrogram -> log-mel in dB, (batch, 1, frames, mel_bins), in the spectrogram's precision."""
        return 10.0 * torch.log10(torch.clamp(power @ self.melW.to(power.dtype), min=AMIN))


FRONT_END = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
             "logmel_extractor.melW")  # below an audio encoder: computed from the config when a checkpoint lacks them


class LogMelEncoder(nn.Module):
    """What CNN14 and HTSAT share: the front end and a batch norm over the mel bands (`bn0`)."""

    def __init__(self, config: MsClapConfig):
        super().__init__()
        self.spectrogram_extractor = Spectrogram(config.window_size, config.hop_size)
        self.logmel_extractor = LogMel(config.mel_sampling_rate, config.window_size, config.mel_bins, config.fmin,
                                       config.fmax)
        self.bn0 = nn.BatchNorm2d(config.mel_bins)

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> normalized log-mel (batch, 1, frames, mel_bins) in the model's precision."""
        features = self.logmel_extractor(self.spectrogram_extractor(waveforms)).to(self.bn0.weight.dtype)
        return self.bn0(features.transpose(1, 3)).transpose(1, 3)


# --- CNN14 (2022) --------------------------------------------------------------------------------------------------

class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14(LogMelEncoder):
    def __init__(self, config: MsClapConfig):
        super().__init__(config)
        channels = [1, *config.cnn14_channels]
        for block, (inputs, outputs) in enumerate(zip(channels, channels[1:]), start=1):
            setattr(self, f"conv_block{block}", ConvBlock(inputs, outputs))
        self.fc1 = nn.Linear(channels[-1], config.out_emb)
        self.fc_audioset = nn.Linear(config.out_emb, config.classes_num)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Six conv blocks (2x2 average pooling after each but the last), the mean over mel bands, then the max plus
        the mean over time, fc1 and ReLU: the embedding."""
        x = self.log_mel(waveforms)
        for block in range(1, 7):
            x = getattr(self, f"conv_block{block}")(x, (2, 2) if block < 6 else (1, 1))
        x = x.mean(dim=3)
        return F.relu(self.fc1(x.max(dim=2).values + x.mean(dim=2)))


# --- HTSAT (2023) --------------------------------------------------------------------------------------------------

def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * windows, window, window, C)."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, channels)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """(B * windows, window, window, C) -> (B, H, W, C)."""
    batch = windows.shape[0] // (height * width // window // window)
    x = windows.view(batch, height // window, width // window, window, window, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, height, width, -1)


def relative_position_index(window: int) -> torch.Tensor:
    """Each token pair's row in the relative position bias table, (window², window²)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[:, :, 0] * (2 * window - 1) + relative[:, :, 1]


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """(windows, window², window²): 0 for token pairs from the same region of the shifted map, SWIN_MASK otherwise."""
    regions = torch.zeros(1, height, width, 1)
    spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for number, (rows, columns) in enumerate((rows, columns) for rows in spans for columns in spans):
        regions[:, rows, columns, :] = number
    regions = window_partition(regions, window).view(-1, window * window)
    differs = regions[:, None, :] - regions[:, :, None]
    return torch.zeros_like(differs).masked_fill(differs != 0, SWIN_MASK)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        windows, tokens, channels = x.shape
        q, k, v = self.qkv(x).reshape(windows, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(tokens, tokens, -1)
        scores = scores + bias.permute(2, 0, 1)[None]
        if mask is not None:
            scores = (scores.view(-1, mask.shape[0], self.heads, tokens, tokens) + mask[None, :, None]).view(
                -1, self.heads, tokens, tokens)
        return self.proj((scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(windows, tokens, channels))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """A Swin transformer block: (shifted) window attention and an MLP, each after a LayerNorm, with residuals. A
    map no larger than the window is one window, unshifted."""

    def __init__(self, dim: int, resolution: tuple[int, int], heads: int, window: int, shift: int):
        super().__init__()
        self.resolution = resolution
        if min(resolution) <= window:
            window, shift = min(resolution), 0
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 4)
        self.register_buffer("attn_mask", shifted_window_mask(*resolution, window, shift) if shift else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.resolution
        batch, tokens, channels = x.shape
        shifted = self.norm1(x).view(batch, height, width, channels)
        if self.shift:
            shifted = torch.roll(shifted, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(shifted, self.window).view(-1, self.window * self.window, channels)
        attended = self.attn(windows, self.attn_mask).view(-1, self.window, self.window, channels)
        shifted = window_reverse(attended, self.window, height, width)
        if self.shift:
            shifted = torch.roll(shifted, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + shifted.reshape(batch, tokens, channels)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Each 2x2 group of tokens concatenated (in HTSAT's order), normalized and reduced to twice the width."""

    def __init__(self, resolution: tuple[int, int], dim: int):
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.resolution
        x = x.view(x.shape[0], height, width, -1)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(x.shape[0], -1, x.shape[-1])))


class SwinStage(nn.Module):
    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, heads: int, window: int, merge: bool):
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(dim, resolution, heads, window, 0 if block % 2 == 0 else window // 2)
                                     for block in range(depth)])
        self.downsample = PatchMerging(resolution, dim) if merge else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(image).flatten(2).transpose(1, 2))


class Htsat(LogMelEncoder):
    def __init__(self, config: MsClapConfig):
        super().__init__(config)
        self.spec_size, self.freq_ratio = config.htsat_spec_size, config.htsat_spec_size // config.mel_bins
        self.patch_embed = PatchEmbed(config.htsat_patch_size, config.htsat_embed_dim)
        grid = config.htsat_spec_size // config.htsat_patch_size
        stages = len(config.htsat_depths)
        self.layers = nn.ModuleList([
            SwinStage(config.htsat_embed_dim * 2 ** stage, (grid // 2 ** stage, grid // 2 ** stage),
                      config.htsat_depths[stage], config.htsat_num_heads[stage], config.htsat_window_size,
                      merge=stage < stages - 1)
            for stage in range(stages)])
        features = config.htsat_embed_dim * 2 ** (stages - 1)
        self.norm = nn.LayerNorm(features)
        frequency_tokens = config.htsat_spec_size // 2 ** (stages - 1) // config.htsat_patch_size // self.freq_ratio
        self.tscam_conv = nn.Conv2d(features, config.classes_num, kernel_size=(frequency_tokens, 3), padding=(0, 1))
        self.head = nn.Linear(config.classes_num, config.classes_num)

    def image(self, log_mel: torch.Tensor) -> torch.Tensor:
        """HTSAT's spec_size² input: the log-mel stretched (bicubic) to freq_ratio x spec_size frames, its time
        axis cut into freq_ratio chunks stacked along the mel axis."""
        frames, bands = self.freq_ratio * self.spec_size, self.spec_size // self.freq_ratio
        if log_mel.shape[2] > frames:
            raise ValueError(f"HTSAT takes at most {frames} frames; msclap's clips are shorter")
        if log_mel.shape[2] < frames:
            log_mel = F.interpolate(log_mel, (frames, log_mel.shape[3]), mode="bicubic", align_corners=True)
        if log_mel.shape[3] < bands:
            log_mel = F.interpolate(log_mel, (log_mel.shape[2], bands), mode="bicubic", align_corners=True)
        x = log_mel.permute(0, 1, 3, 2)
        x = x.reshape(x.shape[0], 1, x.shape[2], self.freq_ratio, x.shape[3] // self.freq_ratio)
        return x.permute(0, 1, 3, 2, 4).reshape(x.shape[0], 1, self.freq_ratio * x.shape[2], x.shape[4])

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """The mean of the last stage's normalized tokens (HTSAT's `latent_output`, which msclap embeds)."""
        x = self.patch_embed(self.image(self.log_mel(waveforms)))
        for stage in self.layers:
            x = stage(x)
        return self.norm(x).mean(dim=1)


class HtsatWrapper(nn.Module):
    """msclap's HTSATWrapper: the encoder one level down (`base.htsat.*`)."""

    def __init__(self, config: MsClapConfig):
        super().__init__()
        self.htsat = Htsat(config)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.htsat(waveforms)
