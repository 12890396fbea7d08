// Host stand-in for CUDA's cuda_bf16.h (jellyzoo host tier, zoo.kernels.host): the __nv_bfloat16 storage type
// and the two conversions the kernels use; any other bfloat16 intrinsic fails to compile for the host.
#pragma once

#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
    std::uint16_t bits;
};
static_assert(sizeof(__nv_bfloat16) == 2, "__nv_bfloat16 must be 2 bytes, as on the GPU");

// Exact widening: the bfloat16 bits are the upper half of the float's.
inline float __bfloat162float(__nv_bfloat16 h) {
    const std::uint32_t bits = static_cast<std::uint32_t>(h.bits) << 16;
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

// float -> bfloat16, rounding to nearest, ties to even; NaN stays a (quiet) NaN.
inline __nv_bfloat16 __float2bfloat16_rn(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{static_cast<std::uint16_t>((bits >> 16) | 0x40u)};
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return __nv_bfloat16{static_cast<std::uint16_t>(bits >> 16)};
}
