// Header only: a vector decoder for the short varints that make up pprof's location ids.
#include <stddef.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <tmmintrin.h>
#endif

/// 1 if this CPU can run kiln_small_varints (x86-64 with SSSE3), else 0.
static inline int kiln_small_varints_supported(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSSE3) != 0;
#else
    return 0;
#endif
}

/// Decodes varints of one to three bytes from *pp up to `end`, up to four per step, each as its value
/// minus one (a dense id's index); returns how many it wrote to `out`, and leaves *pp after the last.
///
/// The end bits (bytes whose top bit is clear) of 64 bytes are taken at once; each step then shifts
/// that mask to its offset, and `keys[the next 12 bits]` says how many whole varints of at most three
/// bytes start the window (bits 0-2), how many bytes they take (bits 3-6) and which byte shuffle
/// spreads them into 32-bit lanes (bits 7+, 16 bytes each in `shuffles`). A step's start then depends
/// on the step before only through a shift and a table load, not through loading the bytes again.
/// The steps stop, leaving the rest to the caller's scalar reader, at a longer varint, a value
/// outside 1...`dense`, or within 80 bytes of `readable_end`. Writes four lanes each step, so `out`
/// needs room for three entries past what it returns.
#if defined(__x86_64__)
__attribute__((target("ssse3")))
#endif
static inline size_t kiln_small_varints(const uint8_t **pp, const uint8_t *end, const uint8_t *readable_end,
                                        int32_t dense, int32_t *out, const uint16_t *keys,
                                        const uint8_t *shuffles) {
#if defined(__x86_64__)
    const uint8_t *p = *pp;
    int32_t *o = out;
    const __m128i low = _mm_set1_epi32(0x7f);
    const __m128i middle = _mm_set1_epi32(0x7f << 7);
    const __m128i high = _mm_set1_epi32(0x7f << 14);
    const __m128i one = _mm_set1_epi32(1);
    const __m128i last = _mm_set1_epi32(dense - 1);
    const __m128i below = _mm_set1_epi32(-1);
    while (p < end && readable_end - p >= 80) {
        uint64_t ends = ~((uint64_t)(uint16_t)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)p))
                          | (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(p + 16))) << 16
                          | (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(p + 32))) << 32
                          | (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(p + 48))) << 48);
        ptrdiff_t left = end - p;
        if (left < 64) ends &= ((uint64_t)1 << left) - 1;
        // A 12-bit window must fit in the mask: steps start at most 52 bytes in.
        unsigned stop = left < 53 ? (unsigned)left : 53;
        unsigned at = 0;
        while (at < stop) {
            unsigned key = keys[(ends >> at) & 0xfff];
            unsigned count = key & 7;
            if (count == 0) goto done;
            __m128i bytes = _mm_loadu_si128((const __m128i *)(p + at));
            __m128i lanes = _mm_shuffle_epi8(bytes, _mm_loadu_si128((const __m128i *)(shuffles + 16 * (key >> 7))));
            __m128i value = _mm_or_si128(_mm_and_si128(lanes, low),
                                         _mm_or_si128(_mm_and_si128(_mm_srli_epi32(lanes, 1), middle),
                                                      _mm_and_si128(_mm_srli_epi32(lanes, 2), high)));
            __m128i index = _mm_sub_epi32(value, one);
            __m128i bad = _mm_or_si128(_mm_cmpgt_epi32(index, last), _mm_cmpeq_epi32(index, below));
            if (_mm_movemask_ps(_mm_castsi128_ps(bad)) & ((1u << count) - 1)) goto done;
            _mm_storeu_si128((__m128i *)o, index);
            o += count;
            at += (key >> 3) & 15;
        }
        p += at;
        continue;
    done:
        p += at;
        break;
    }
    *pp = p;
    return (size_t)(o - out);
#else
    (void)pp; (void)end; (void)readable_end; (void)dense; (void)out; (void)keys; (void)shuffles;
    return 0;
#endif
}
