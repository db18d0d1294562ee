"""NumPy reference for the NVFP4 kernels: bit-exact E4M3 / E2M1 codecs and the TE-order recipe.

Every function works on float32 bit patterns with integer operations, the way the CUDA kernels
do, so results are bit-exact by construction rather than by tolerance:

- E4M3 (OCP E4M3FN): bias 7, max 448 (0x7E), 0x7F is NaN, subnormals m * 2^-9; round to nearest
  even; `satfinite` clamps overflow (|x| > 464 and inf) to +-448, otherwise it becomes NaN.
- E2M1: codes 0..7 = 0, 0.5, 1, 1.5, 2, 3, 4, 6 (bit 3 is the sign); RNE, saturating to +-6.
- NVFP4 (TransformerEngine order): S_enc = 448*6/amax (1 if amax is 0); per 16 elements
  sf = e4m3_sat(vmax * (S_enc * (1/6))); q = e2m1(x * (1 / (fp32(sf) * (1 / S_enc)))); element
  2i in the low nibble of byte i. Dequantise: e2m1(q) * fp32(sf) * (1 / S_enc).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F32 = np.float32
U8 = NDArray[np.uint8]
F32A = NDArray[np.float32]
BLOCK = 16
E2M1_VALUES = np.array(
    [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=F32
)


def _bits(x: NDArray[np.floating]) -> NDArray[np.uint32]:
    return np.ascontiguousarray(x, dtype=F32).view(np.uint32)


def _rne_shift(value: NDArray[np.uint64], shift: NDArray[np.int64]) -> NDArray[np.uint64]:
    """value >> shift rounded to nearest, ties to even (shift >= 1; shifts past 63 give 0)."""
    shift = np.minimum(shift, 63).astype(np.uint64)
    one = np.uint64(1)
    kept = value >> shift
    rem = value & ((one << shift) - one)
    half = one << (shift - one)
    up = (rem > half) | ((rem == half) & ((kept & one) == one))
    return kept + up.astype(np.uint64)


def e4m3_encode(x: NDArray[np.floating], satfinite: bool = True) -> U8:
    """float32 -> E4M3 codes (RNE). satfinite: overflow and inf -> +-448, else NaN (0x7F)."""
    bits = _bits(x).astype(np.uint64)
    sign = ((bits >> 31) << 7).astype(np.uint8)
    exp = ((bits >> 23) & 0xFF).astype(np.int64)
    sig = (bits & 0x7FFFFF) | np.where(exp > 0, 1 << 23, 0).astype(np.uint64)
    e = np.where(exp > 0, exp - 127, -126)
    # a normal E4M3 (e >= -6) keeps 3 mantissa bits: drop 20; a subnormal is sig * 2^(e-23) / 2^-9
    shift = np.where(e >= -6, 20, 14 - e)
    rounded = _rne_shift(sig, shift).astype(np.int64)
    code = np.where(e >= -6, ((e + 7) << 3) + (rounded - 8), rounded)  # carries overflow into exp
    nan = exp == 0xFF
    inf_or_big = (code >= 0x7F) | (nan & ((bits & 0x7FFFFF) == 0))
    over = np.uint8(0x7E) if satfinite else np.uint8(0x7F)
    out = np.where(inf_or_big, over, np.clip(code, 0, 0x7E)).astype(np.uint8)
    out = np.where(nan & ((bits & 0x7FFFFF) != 0), np.uint8(0x7F), out)
    return (out | sign).astype(np.uint8)


def e4m3_decode(codes: U8) -> F32A:
    c = codes.astype(np.int64)
    exp, man = (c >> 3) & 0xF, c & 0x7
    value = np.where(exp == 0, man * 2.0**-9, (1 + man / 8.0) * np.exp2(exp - 7.0))
    value = np.where((c & 0x7F) == 0x7F, np.nan, value)
    return np.where(c & 0x80, -value, value).astype(F32)


def e2m1_encode(x: NDArray[np.floating]) -> U8:
    """float32 -> E2M1 codes (RNE, saturating to +-6). NaN is outside the contract."""
    bits = _bits(x).astype(np.uint64)
    sign = ((bits >> 31) << 3).astype(np.uint8)
    exp = ((bits >> 23) & 0xFF).astype(np.int64)
    sig = (bits & 0x7FFFFF) | np.where(exp > 0, 1 << 23, 0).astype(np.uint64)
    e = np.where(exp > 0, exp - 127, -126)
    shift = np.where(e >= 0, 22, 22 - e)  # normal: keep 1 mantissa bit; subnormal quantum 0.5
    rounded = _rne_shift(sig, shift).astype(np.int64)
    code = np.where(e >= 0, ((e + 1) << 1) + (rounded - 2), rounded)
    code = np.where(exp == 0xFF, 7, np.clip(code, 0, 7))
    return (code.astype(np.uint8) | sign).astype(np.uint8)


def e2m1_decode(codes: U8) -> F32A:
    return E2M1_VALUES[codes.astype(np.int64) & 0xF]


def global_encode_scale(amax: float) -> np.float32:
    """S_enc = 448*6/amax in fp32, clamped to FLT_MAX; 1.0 when amax is 0."""
    amax32 = F32(amax)
    if amax32 == 0:
        return F32(1.0)
    with np.errstate(over="ignore", divide="ignore"):
        s = F32(F32(448 * 6) / amax32)
    s = min(s, F32(np.finfo(F32).max))
    return F32(1.0) if s == 0 else F32(s)


def quantize(x: NDArray[np.floating], s_enc: np.float32) -> tuple[U8, U8]:
    """[..., K] float -> (packed [..., K/2] bytes, scales [..., K/16] E4M3 codes), TE order."""
    x32 = np.asarray(x, dtype=F32)
    blocks = x32.reshape(-1, BLOCK)
    vmax = np.max(np.abs(blocks), axis=1)
    with np.errstate(over="ignore"):
        sf = e4m3_encode(vmax * F32(s_enc * F32(F32(1.0) / F32(6.0))))
        dec = e4m3_decode(sf) * F32(F32(1.0) / s_enc)
        with np.errstate(divide="ignore"):
            enc = np.where(dec == 0, F32(0), F32(1.0) / np.where(dec == 0, F32(1), dec)).astype(F32)
    q = e2m1_encode((blocks * enc[:, None]).astype(F32)).reshape(-1)
    packed = (q[0::2] | (q[1::2] << 4)).astype(np.uint8)
    lead = x32.shape[:-1]
    return packed.reshape(*lead, -1), sf.reshape(*lead, -1)


def unpack(packed: U8) -> U8:
    out = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), dtype=np.uint8)
    out[..., 0::2] = packed & 0xF
    out[..., 1::2] = packed >> 4
    return out


def dequantize(packed: U8, scales: U8, s_enc: np.float32) -> F32A:
    """NVFP4 -> float32: e2m1(q) * fp32(sf) * (1/S_enc), in that order."""
    q = e2m1_decode(unpack(packed)).reshape(-1, BLOCK)
    sf = e4m3_decode(scales).reshape(-1)
    out = (q * sf[:, None]).astype(F32) * F32(F32(1.0) / s_enc)
    return out.astype(F32).reshape((*packed.shape[:-1], packed.shape[-1] * 2))


def to_bf16_bits(x: F32A) -> NDArray[np.uint16]:
    """float32 -> bfloat16 bit patterns, RNE (NaN kept quiet)."""
    bits = _bits(x).astype(np.uint64)
    rounded = _rne_shift(bits, np.full(bits.shape, 16, dtype=np.int64))
    nan = np.isnan(np.asarray(x, dtype=F32))
    return np.where(nan, (bits >> 16) | 0x40, rounded).astype(np.uint16)


def dequantize_to_e4m3(packed: U8, scales: U8) -> U8:
    """The KV path: NVFP4 -> FP8 E4M3 codes of e2m1(q) * fp32(sf) / 8 (FP8 scale 8 / S_enc)."""
    q = e2m1_decode(unpack(packed)).reshape(-1, BLOCK)
    sf = e4m3_decode(scales).reshape(-1)
    value = ((q * sf[:, None]).astype(F32) * F32(0.125)).astype(F32)
    return e4m3_encode(value).reshape((*packed.shape[:-1], packed.shape[-1] * 2))


def swizzle_offset(
    m: int | NDArray[np.int64], kb: int | NDArray[np.int64], n_kb: int
) -> NDArray[np.int64]:
    """Byte offset of scale (row m, block kb) in the 128x4 swizzled layout GEMMs read."""
    m, kb = np.asarray(m, dtype=np.int64), np.asarray(kb, dtype=np.int64)
    kb_tiles = (n_kb + 3) // 4
    return (
        (m // 128) * kb_tiles * 512
        + (kb // 4) * 512
        + (m % 32) * 16
        + ((m % 128) // 32) * 4
        + (kb % 4)
    )


def swizzle(scales: U8) -> U8:
    """[M, K/16] scales -> the padded 128x4 swizzled buffer (padding is 0)."""
    rows, n_kb = scales.shape
    padded_rows, padded_kb = -(-rows // 128) * 128, -(-n_kb // 4) * 4
    out = np.zeros(padded_rows * padded_kb, dtype=np.uint8)
    m, kb = np.meshgrid(np.arange(rows), np.arange(n_kb), indexing="ij")
    out[swizzle_offset(m, kb, n_kb).reshape(-1)] = scales.reshape(-1)
    return out
