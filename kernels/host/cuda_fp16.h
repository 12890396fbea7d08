// Host stand-in for CUDA's cuda_fp16.h (jellyzoo host tier, zoo.kernels.host): the __half storage type and the
// two conversions the kernels use. Nothing else is declared, so a kernel using any other half intrinsic fails
// to compile for the host and cannot escape the CPU-executed tests.
#pragma once

#include <cstdint>
#include <cstring>

struct __half {
    std::uint16_t bits;
};
static_assert(sizeof(__half) == 2, "__half must be 2 bytes, as on the GPU");

// Exact widening of an IEEE binary16 value (normal, subnormal, zero, inf, NaN) to float.
inline float __half2float(__half h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
    std::uint32_t exponent = (h.bits >> 10) & 0x1fu;
    std::uint32_t mantissa = h.bits & 0x3ffu;
    std::uint32_t bits;
    if (exponent == 0x1fu) {
        bits = sign | 0x7f800000u | (mantissa << 13);  // inf, NaN (payload kept)
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 -> 127
    } else if (mantissa == 0) {
        bits = sign;  // +-0
    } else {
        exponent = 113u;  // subnormal: normalise (value = mantissa * 2^-24)
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            --exponent;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

// float -> binary16, rounding to nearest, ties to even (overflow to inf, gradual underflow, NaN stays NaN).
inline __half __float2half_rn(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
    const std::uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return __half{static_cast<std::uint16_t>(sign | 0x7e00u)};  // NaN
    if (magnitude >= 0x47800000u) return __half{static_cast<std::uint16_t>(sign | 0x7c00u)};  // >= 65536: inf
    if (magnitude < 0x38800000u) {  // below 2^-14: subnormal half (or zero)
        if (magnitude < 0x33000000u) return __half{sign};  // below 2^-25: rounds to zero
        const std::uint32_t exponent = magnitude >> 23;
        const std::uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126u - exponent;  // value = mantissa * 2^(exponent-150), unit 2^-24
        std::uint32_t result = mantissa >> shift;
        const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
        const std::uint32_t half_unit = 1u << (shift - 1u);
        if (rest > half_unit || (rest == half_unit && (result & 1u))) ++result;
        return __half{static_cast<std::uint16_t>(sign | result)};
    }
    std::uint32_t result = ((magnitude >> 13) - (112u << 10)) & 0xffffu;  // rebias 127 -> 15, keep 10 bits
    const std::uint32_t rest = magnitude & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (result & 1u))) ++result;  // a carry may round up to inf: correct
    return __half{static_cast<std::uint16_t>(sign | result)};
}
