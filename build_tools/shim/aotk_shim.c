/* The C part of every aotkernels library: what numba-emitted kernels cannot provide.
 *
 * - numba lowers math.gamma to helper symbols from its own runtime; here they are plain
 *   libm calls, so the library needs nothing beyond libc/libm (-Wl,-z,defs proves it).
 * - aotk_x86_level: the x86-64 micro-architecture level of this CPU, for choosing a
 *   library; this file is built for the baseline, so calling it is safe on any x86-64.
 */
#include <math.h>
#include <stdint.h>

#define HIDDEN __attribute__((visibility("hidden")))
#define EXPORT __attribute__((visibility("default")))

HIDDEN double numba_gamma(double x) { return tgamma(x); }
HIDDEN float numba_gammaf(float x) { return tgammaf(x); }

EXPORT int32_t aotk_abi_version(void) { return AOTK_ABI_VERSION; }

EXPORT int32_t aotk_x86_level(void) {
#if defined(__x86_64__) && defined(__GNUC__) && __GNUC__ >= 12
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    if (__builtin_cpu_supports("x86-64-v2")) return 2;
    return 1;
#else
    return 0;
#endif
}
