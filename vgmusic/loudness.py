"""Loudness as games ask for it: ITU-R BS.1770 integrated loudness (LUFS) and true peak (dBTP).

The K-weighting is pyloudnorm's (its two biquads, designed by the same formulas for the sample rate),
applied by FFT convolution with its impulse response in float64, and the gating is BS.1770's as
pyloudnorm computes it (400 ms blocks, 75% overlap, -70 LUFS absolute gate, -10 LU relative gate); the
blocks' mean squares are kept, so the loudness after any gain is found without filtering again. The
tests hold it to pyloudnorm's own meter within 0.01 LU. True peak is the largest sample of the audio
oversampled four times (BS.1770 Annex 2's method, with a 48-tap interpolator), evaluated only next to
the samples loud enough to make a higher one.

NumPy only: SciPy (which pyloudnorm and scipy.signal would bring) costs a second of CPU to import, more
than measuring a mix and four stems; pyloudnorm and SciPy are the tests' references.
"""
import math
from functools import lru_cache

import numpy as np

BLOCK_SECONDS = 0.4  # BS.1770's gating block
OVERLAP = 0.75
ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the absolutely gated loudness
OVERSAMPLE = 4  # BS.1770 Annex 2: 4x at 44.1/48 kHz finds a peak to within about 0.5 dB
TAPS = 12  # per phase: 48 taps in all, as Annex 2's example interpolator
CHUNK = 1 << 16  # candidate frames evaluated at a time (bounded memory)
# the K-weighting by FFT convolution: its impulse response's first IMPULSE frames (186 ms at 44.1 kHz),
# blocks of FFT_SIZE - IMPULSE + 1 frames transformed at once
IMPULSE = 1 << 13
FFT_SIZE = 1 << 16


@lru_cache(maxsize=4)
def k_weighting(rate):
    """BS.1770's K-weighting at `rate` as two biquads ((b, a), (b, a)): its high shelf (+4 dB above about
    1.5 kHz, the head's effect), then its high pass (38 Hz, the revised low-frequency B-curve), by the
    formulas pyloudnorm designs them with (the cookbook biquads at G 4 dB, Q 1/sqrt 2, 1500 Hz; Q 0.5,
    38 Hz), so the filter is pyloudnorm's at every rate (tests/test_export.py compares the coefficients)."""
    out = []
    for kind, gain, q, fc in (("shelf", 4.0, 1 / math.sqrt(2), 1500.0), ("pass", 0.0, 0.5, 38.0)):
        big = 10 ** (gain / 40)
        w0 = 2 * math.pi * fc / rate
        alpha, cos = math.sin(w0) / (2 * q), math.cos(w0)
        if kind == "shelf":
            root = 2 * math.sqrt(big) * alpha
            b = (big * ((big + 1) + (big - 1) * cos + root), -2 * big * ((big - 1) + (big + 1) * cos),
                 big * ((big + 1) + (big - 1) * cos - root))
            a = ((big + 1) - (big - 1) * cos + root, 2 * ((big - 1) - (big + 1) * cos), (big + 1) - (big - 1) * cos - root)
        else:
            b = ((1 + cos) / 2, -(1 + cos), (1 + cos) / 2)
            a = (1 + alpha, -2 * cos, 1 - alpha)
        out.append((tuple(x / a[0] for x in b), tuple(x / a[0] for x in a)))
    return tuple(out)


@lru_cache(maxsize=4)
def _k_spectrum(rate):
    """The K-weighting's impulse response (the first IMPULSE frames, by the biquads' own recursion, in
    float64) as the spectrum of an FFT_SIZE-point transform. Its slowest part, the 38 Hz high pass, decays
    by 0.9946 a frame at 44.1 kHz: after IMPULSE frames it is below 1e-19 of its start, so the convolution
    is the recursive filter to float64's precision."""
    x = [1.0] + [0.0] * (IMPULSE - 1)
    for (b0, b1, b2), (_, a1, a2) in k_weighting(rate):
        y, x1, x2, y1, y2 = [], 0.0, 0.0, 0.0, 0.0
        for v in x:
            out = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            x2, x1, y2, y1 = x1, v, y1, out
            y.append(out)
        x = y
    return np.fft.rfft(np.array(x), FFT_SIZE)


def k_weighted(audio, rate):
    """`audio` (frames x channels) through the K-weighting, float64, as a recursive filter starting at
    rest gives it: by FFT convolution with its impulse response, a block at a time (overlap-add), in
    NumPy alone (SciPy's import costs a second of CPU, more than the filtering)."""
    spectrum = _k_spectrum(rate)[:, None]
    step = FFT_SIZE - IMPULSE + 1
    out = np.zeros((len(audio) + FFT_SIZE, audio.shape[1]))
    for start in range(0, len(audio), step):
        block = np.fft.irfft(np.fft.rfft(audio[start:start + step], FFT_SIZE, axis=0) * spectrum, FFT_SIZE, axis=0)
        out[start:start + FFT_SIZE] += block
    return out[:len(audio)]


def block_powers(audio, rate):
    """The mean square of each K-weighted channel over each gating block: (blocks, channels) float64.
    `audio` is frames x channels float32; the blocks are pyloudnorm's."""
    audio = np.asarray(audio, np.float32).reshape(len(audio), -1)
    weighted = k_weighted(audio, rate)
    block = BLOCK_SECONDS * rate
    count = int(round((len(audio) / rate - BLOCK_SECONDS) / (BLOCK_SECONDS * (1 - OVERLAP)))) + 1
    if len(audio) < block or count < 1:
        return np.zeros((0, audio.shape[1]))
    # a block is 4 hops of 100 ms: pyloudnorm's bounds int(0.4 * j * 0.25 * rate) (multiples of 0.25 are
    # exact in binary, so block j ends where hop j + 4 starts); each hop summed once, in float64
    hops = count + 3
    bounds = (BLOCK_SECONDS * (np.arange(hops + 1) * (1 - OVERLAP)) * rate).astype(int)
    bounds[-1] = min(bounds[-1], len(audio))
    np.square(weighted, out=weighted)
    sums = np.add.reduceat(weighted[:bounds[-1]], bounds[:-1], axis=0, dtype=np.float64)
    return (sums[:-3] + sums[1:-2] + sums[2:-1] + sums[3:]) / block


def gated_loudness(powers, gain=1.0):
    """Integrated loudness (LUFS) of audio whose block_powers are `powers`, scaled by `gain`; -inf for
    silence. Channel weights: 1 each (BS.1770's for left, right and centre)."""
    if not len(powers) or gain == 0:
        return -math.inf
    z = powers * (gain * gain)
    with np.errstate(divide="ignore"):
        blocks = -0.691 + 10 * np.log10(z.sum(axis=1))
    kept = blocks >= ABSOLUTE_GATE
    if not kept.any():
        return -math.inf
    relative = -0.691 + 10 * math.log10(z[kept].mean(axis=0).sum()) + RELATIVE_GATE
    kept = (blocks > relative) & (blocks > ABSOLUTE_GATE)
    if not kept.any():
        return -math.inf
    return -0.691 + 10 * math.log10(z[kept].mean(axis=0).sum())


def integrated_loudness(audio, rate):
    return gated_loudness(block_powers(audio, rate))


def _interpolator():
    """(OVERSAMPLE, TAPS): the phases of a windowed-sinc lowpass at the original band edge, gain 4: SciPy's
    firwin(48, 1/4, window=("kaiser", 5.0)) (a sinc at the cutoff, Kaiser-windowed, scaled to unit gain
    at 0 Hz), computed here so that exporting never imports SciPy."""
    n = OVERSAMPLE * TAPS
    m = np.arange(n) - (n - 1) / 2
    h = np.sinc(m / OVERSAMPLE) / OVERSAMPLE * np.kaiser(n, 5.0)
    h = h / h.sum() * OVERSAMPLE
    return h.reshape(TAPS, OVERSAMPLE).T.astype(np.float32)


def true_peak(audio):
    """The largest absolute value of `audio` (frames x channels) oversampled OVERSAMPLE times, or its
    largest sample if higher: linear, 1.0 is full scale. Output frame n of the oversampled signal is
    made of input frames n-TAPS+1..n, and is at most sum|phase| times their largest value: only frames
    within TAPS after one that loud could exceed the sample peak, and only they are computed."""
    audio = np.asarray(audio, np.float32).reshape(len(audio), -1)
    if not len(audio):
        return 0.0
    level = np.abs(audio[:, 0])  # each frame's loudest channel (a max over axis 1 is 20 times slower)
    for channel in range(1, audio.shape[1]):
        np.maximum(level, np.abs(audio[:, channel]), out=level)
    peak = float(level.max())
    if peak == 0:
        return 0.0
    phases = _interpolator()
    hot = np.flatnonzero(level >= peak / float(np.abs(phases).sum(axis=1).max()))
    frames = np.unique((hot[:, None] + np.arange(TAPS)).ravel())  # output frames, of len + TAPS - 1
    padded = np.concatenate([np.zeros((TAPS - 1, audio.shape[1]), np.float32), audio,
                             np.zeros((TAPS - 1, audio.shape[1]), np.float32)])
    reversed_phases = phases[:, ::-1]
    for start in range(0, len(frames), CHUNK):
        windows = padded[frames[start:start + CHUNK, None] + np.arange(TAPS)]  # (m, TAPS, channels)
        peak = max(peak, float(np.abs(np.einsum("mtc,kt->mkc", windows, reversed_phases)).max()))
    return peak


def db(linear):
    return 20 * math.log10(linear) if linear > 0 else -math.inf
