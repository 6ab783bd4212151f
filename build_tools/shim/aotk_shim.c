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

/* BLAS trampolines. Kernels of the ``blas`` family call aotk_{d,s}{gemm,gemv,dot}; the
 * runtime points them at a BLAS when it loads the library (aotk_set_blas): the 64-bit-index
 * CBLAS that NumPy bundles (scipy-openblas), or the LP64 Fortran BLAS that SciPy exports as
 * cython_blas capsules. Without one, a trampoline returns -1 and the kernel runs its own
 * loop. Arguments describe row-major operands; pointers travel as integers. */
#include <limits.h>

enum { BLAS_NONE = 0, BLAS_CBLAS64 = 1, BLAS_FORTRAN32 = 2 };
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

static int32_t blas_kind = BLAS_NONE;
static void *blas_fn[6]; /* dgemm sgemm dgemv sgemv ddot sdot */

EXPORT int32_t aotk_set_blas(int32_t kind, void *dgemm, void *sgemm, void *dgemv,
                             void *sgemv, void *ddot, void *sdot) {
    if (kind != BLAS_NONE && kind != BLAS_CBLAS64 && kind != BLAS_FORTRAN32) return -1;
    void *fns[6] = {dgemm, sgemm, dgemv, sgemv, ddot, sdot};
    for (int i = 0; i < 6; i++)
        if (kind != BLAS_NONE && !fns[i]) return -1;
    for (int i = 0; i < 6; i++) blas_fn[i] = kind == BLAS_NONE ? 0 : fns[i];
    blas_kind = kind;
    return 0;
}

EXPORT int32_t aotk_blas_kind(void) { return blas_kind; }

static int fits32(int64_t a, int64_t b, int64_t c, int64_t d, int64_t e, int64_t f) {
    return a <= INT_MAX && b <= INT_MAX && c <= INT_MAX && d <= INT_MAX && e <= INT_MAX &&
           f <= INT_MAX;
}

#define GEMM(NAME, T, SLOT)                                                                  \
    HIDDEN int32_t NAME(int32_t ta, int32_t tb, int64_t m, int64_t n, int64_t k, T alpha,    \
                        intptr_t a, int64_t lda, intptr_t b, int64_t ldb, T beta, intptr_t c, \
                        int64_t ldc) {                                                       \
        if (blas_kind == BLAS_CBLAS64) {                                                     \
            ((void (*)(int, int, int, int64_t, int64_t, int64_t, T, const T *, int64_t,      \
                       const T *, int64_t, T, T *, int64_t))blas_fn[SLOT])(                  \
                ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, m, n, k, alpha,     \
                (const T *)a, lda, (const T *)b, ldb, beta, (T *)c, ldc);                    \
            return 0;                                                                        \
        }                                                                                    \
        if (blas_kind == BLAS_FORTRAN32 && fits32(m, n, k, lda, ldb, ldc)) {                 \
            /* row-major C = op(A) op(B) is column-major C' = op(B)' op(A)' */               \
            char fa = ta ? 'T' : 'N', fb = tb ? 'T' : 'N';                                   \
            int im = (int)m, in = (int)n, ik = (int)k, ila = (int)lda, ilb = (int)ldb,       \
                ilc = (int)ldc;                                                              \
            ((void (*)(char *, char *, int *, int *, int *, T *, T *, int *, T *, int *,     \
                       T *, T *, int *))blas_fn[SLOT])(&fb, &fa, &in, &im, &ik, &alpha,      \
                                                      (T *)b, &ilb, (T *)a, &ila, &beta,    \
                                                      (T *)c, &ilc);                         \
            return 0;                                                                        \
        }                                                                                    \
        return -1;                                                                           \
    }

#define GEMV(NAME, T, SLOT)                                                                  \
    HIDDEN int32_t NAME(int32_t ta, int64_t m, int64_t n, T alpha, intptr_t a, int64_t lda,  \
                        intptr_t x, int64_t incx, T beta, intptr_t y, int64_t incy) {        \
        if (blas_kind == BLAS_CBLAS64) {                                                     \
            ((void (*)(int, int, int64_t, int64_t, T, const T *, int64_t, const T *,         \
                       int64_t, T, T *, int64_t))blas_fn[SLOT])(                             \
                ROW_MAJOR, ta ? TRANS : NO_TRANS, m, n, alpha, (const T *)a, lda,            \
                (const T *)x, incx, beta, (T *)y, incy);                                     \
            return 0;                                                                        \
        }                                                                                    \
        if (blas_kind == BLAS_FORTRAN32 && fits32(m, n, lda, incx, incy, 0)) {               \
            /* row-major A (m x n) is column-major A' (n x m): flip the transpose */         \
            char ft = ta ? 'N' : 'T';                                                        \
            int im = (int)n, in = (int)m, ila = (int)lda, ix = (int)incx, iy = (int)incy;    \
            ((void (*)(char *, int *, int *, T *, T *, int *, T *, int *, T *, T *,          \
                       int *))blas_fn[SLOT])(&ft, &im, &in, &alpha, (T *)a, &ila, (T *)x,    \
                                            &ix, &beta, (T *)y, &iy);                        \
            return 0;                                                                        \
        }                                                                                    \
        return -1;                                                                           \
    }

/* SciPy's capsules are C wrappers around the Fortran routines, so sdot returns a float. */
#define DOT(NAME, T, SLOT)                                                                   \
    HIDDEN int32_t NAME(int64_t n, intptr_t x, int64_t incx, intptr_t y, int64_t incy,       \
                        intptr_t out) {                                                      \
        if (blas_kind == BLAS_CBLAS64) {                                                     \
            *(T *)out = ((T (*)(int64_t, const T *, int64_t, const T *, int64_t))            \
                             blas_fn[SLOT])(n, (const T *)x, incx, (const T *)y, incy);      \
            return 0;                                                                        \
        }                                                                                    \
        if (blas_kind == BLAS_FORTRAN32 && fits32(n, incx, incy, 0, 0, 0)) {                 \
            int in = (int)n, ix = (int)incx, iy = (int)incy;                                 \
            *(T *)out = ((T (*)(int *, T *, int *, T *, int *))blas_fn[SLOT])(               \
                &in, (T *)x, &ix, (T *)y, &iy);                                              \
            return 0;                                                                        \
        }                                                                                    \
        return -1;                                                                           \
    }

GEMM(aotk_dgemm, double, 0)
GEMM(aotk_sgemm, float, 1)
GEMV(aotk_dgemv, double, 2)
GEMV(aotk_sgemv, float, 3)
DOT(aotk_ddot, double, 4)
DOT(aotk_sdot, float, 5)

/* LAPACK trampolines. Kernels of the ``lapack`` family call aotk_{d,s}{potrf,trtrs,...} on
 * column-major matrices; the runtime points them at the LP64 Fortran LAPACK that SciPy
 * exports as cython_lapack capsules when it loads the library (aotk_set_lapack, in the
 * order of LAPACK_SLOTS). A trampoline returns LAPACK's info, or LAPACK_NONE when none is
 * bound or a size does not fit its 32-bit integers: the kernel then runs its own loop.
 * Pivots are LAPACK's 32-bit integers, in workspace the kernel was given. */
#define LAPACK_NONE INT32_MIN
#define LAPACK_SLOTS 14 /* {d,s}: potrf trtrs getrf getrs potrs sytrf sytrs */

static void *lapack_fn[LAPACK_SLOTS];

EXPORT int32_t aotk_set_lapack(int32_t n, void *const *fns) {
    int bound = 0;
    if (n != LAPACK_SLOTS) return -1;
    for (int i = 0; i < n; i++) bound += fns[i] != 0;
    if (bound != 0 && bound != n) return -1; /* all or none */
    for (int i = 0; i < n; i++) lapack_fn[i] = fns[i];
    return 0;
}

EXPORT int32_t aotk_lapack_bound(void) { return lapack_fn[0] != 0; }

#define POTRF(NAME, T, SLOT)                                                                 \
    HIDDEN int32_t NAME(int32_t lower, int64_t n, intptr_t a, int64_t lda) {                 \
        if (!lapack_fn[SLOT] || !fits32(n, lda, 0, 0, 0, 0)) return LAPACK_NONE;             \
        char uplo = lower ? 'L' : 'U';                                                       \
        int in = (int)n, ilda = (int)lda, info = 0;                                          \
        ((void (*)(char *, int *, T *, int *, int *))lapack_fn[SLOT])(&uplo, &in, (T *)a,    \
                                                                      &ilda, &info);         \
        return info;                                                                         \
    }

#define TRTRS(NAME, T, SLOT)                                                                 \
    HIDDEN int32_t NAME(int32_t lower, int32_t trans, int32_t unit, int64_t n, int64_t nrhs, \
                        intptr_t a, int64_t lda, intptr_t b, int64_t ldb) {                  \
        if (!lapack_fn[SLOT] || !fits32(n, nrhs, lda, ldb, 0, 0)) return LAPACK_NONE;        \
        char uplo = lower ? 'L' : 'U', tr = trans ? 'T' : 'N', diag = unit ? 'U' : 'N';      \
        int in = (int)n, irhs = (int)nrhs, ilda = (int)lda, ildb = (int)ldb, info = 0;       \
        ((void (*)(char *, char *, char *, int *, int *, T *, int *, T *, int *,             \
                   int *))lapack_fn[SLOT])(&uplo, &tr, &diag, &in, &irhs, (T *)a, &ilda,     \
                                           (T *)b, &ildb, &info);                            \
        return info;                                                                         \
    }

/* LU with partial pivoting of a square matrix: getrf(n, n, a, lda, ipiv) */
#define GETRF(NAME, T, SLOT)                                                                 \
    HIDDEN int32_t NAME(int64_t n, intptr_t a, int64_t lda, intptr_t ipiv) {                 \
        if (!lapack_fn[SLOT] || !fits32(n, lda, 0, 0, 0, 0)) return LAPACK_NONE;             \
        int in = (int)n, ilda = (int)lda, info = 0;                                          \
        ((void (*)(int *, int *, T *, int *, int *, int *))lapack_fn[SLOT])(                 \
            &in, &in, (T *)a, &ilda, (int *)ipiv, &info);                                    \
        return info;                                                                         \
    }

/* solves with a factorization: getrs (LU and pivots), sytrs (Bunch-Kaufman and pivots),
 * potrs (Cholesky, no pivots) */
#define PIVOTED_TRS(NAME, T, SLOT, FIRST)                                                    \
    HIDDEN int32_t NAME(int32_t flag, int64_t n, int64_t nrhs, intptr_t a, int64_t lda,      \
                        intptr_t ipiv, intptr_t b, int64_t ldb) {                            \
        if (!lapack_fn[SLOT] || !fits32(n, nrhs, lda, ldb, 0, 0)) return LAPACK_NONE;        \
        char c = FIRST;                                                                      \
        int in = (int)n, irhs = (int)nrhs, ilda = (int)lda, ildb = (int)ldb, info = 0;       \
        ((void (*)(char *, int *, int *, T *, int *, int *, T *, int *, int *))              \
             lapack_fn[SLOT])(&c, &in, &irhs, (T *)a, &ilda, (int *)ipiv, (T *)b, &ildb,     \
                              &info);                                                        \
        return info;                                                                         \
    }

#define POTRS(NAME, T, SLOT)                                                                 \
    HIDDEN int32_t NAME(int32_t lower, int64_t n, int64_t nrhs, intptr_t a, int64_t lda,     \
                        intptr_t b, int64_t ldb) {                                           \
        if (!lapack_fn[SLOT] || !fits32(n, nrhs, lda, ldb, 0, 0)) return LAPACK_NONE;        \
        char uplo = lower ? 'L' : 'U';                                                       \
        int in = (int)n, irhs = (int)nrhs, ilda = (int)lda, ildb = (int)ldb, info = 0;       \
        ((void (*)(char *, int *, int *, T *, int *, T *, int *, int *))lapack_fn[SLOT])(    \
            &uplo, &in, &irhs, (T *)a, &ilda, (T *)b, &ildb, &info);                         \
        return info;                                                                         \
    }

/* Bunch-Kaufman factorization of a symmetric matrix; ``lwork`` items of work (a smaller
 * array than the optimum only makes LAPACK use smaller blocks) */
#define SYTRF(NAME, T, SLOT)                                                                 \
    HIDDEN int32_t NAME(int32_t lower, int64_t n, intptr_t a, int64_t lda, intptr_t ipiv,    \
                        intptr_t work, int64_t lwork) {                                      \
        if (!lapack_fn[SLOT] || !fits32(n, lda, lwork, 0, 0, 0)) return LAPACK_NONE;         \
        char uplo = lower ? 'L' : 'U';                                                       \
        int in = (int)n, ilda = (int)lda, ilwork = (int)lwork, info = 0;                     \
        ((void (*)(char *, int *, T *, int *, int *, T *, int *, int *))lapack_fn[SLOT])(    \
            &uplo, &in, (T *)a, &ilda, (int *)ipiv, (T *)work, &ilwork, &info);              \
        return info;                                                                         \
    }

POTRF(aotk_dpotrf, double, 0)
POTRF(aotk_spotrf, float, 1)
TRTRS(aotk_dtrtrs, double, 2)
TRTRS(aotk_strtrs, float, 3)
GETRF(aotk_dgetrf, double, 4)
GETRF(aotk_sgetrf, float, 5)
PIVOTED_TRS(aotk_dgetrs, double, 6, flag ? 'T' : 'N')
PIVOTED_TRS(aotk_sgetrs, float, 7, flag ? 'T' : 'N')
POTRS(aotk_dpotrs, double, 8)
POTRS(aotk_spotrs, float, 9)
SYTRF(aotk_dsytrf, double, 10)
SYTRF(aotk_ssytrf, float, 11)
PIVOTED_TRS(aotk_dsytrs, double, 12, flag ? 'L' : 'U')
PIVOTED_TRS(aotk_ssytrs, float, 13, flag ? 'L' : 'U')

/* The plan executor's inner loop (aotkernels/pytensor/executor.py): run a prepared sequence of kernel
 * calls with no Python in between. Operands are (root, byte offset) pairs: ``roots`` holds
 * one base pointer per buffer the plan knows (inputs, intermediates, results), which Python
 * rewrites per call only where it changes; a view is a root plus an offset, so views cost
 * nothing here. Returns 0, or the 1-based index of the step whose kernel failed, with its
 * status in *status. */
#define AOTK_MAX_OPERANDS 16
EXPORT int32_t aotk_max_operands(void) { return AOTK_MAX_OPERANDS; }

typedef int32_t (*aotk_kernel)(void **, const int64_t *, const int64_t *);
typedef struct {
    aotk_kernel fn;
    int64_t n;               /* operands, at most AOTK_MAX_OPERANDS (the planner checks) */
    const int64_t *operands; /* n pairs: root index, byte offset */
    const int64_t *shapes;
    const int64_t *strides;
} aotk_step;

static int32_t run_loop(const void *loop, char *const *roots); /* Scan loops, below */

EXPORT int32_t aotk_run_steps(int64_t n, const aotk_step *steps, char *const *roots,
                              int32_t *status) {
    void *data[AOTK_MAX_OPERANDS];
    for (int64_t i = 0; i < n; i++) {
        const aotk_step *st = &steps[i];
        if (!st->fn) { /* a Scan loop: ``shapes`` points to its aotk_loop */
            int32_t s = run_loop(st->shapes, roots);
            if (s) {
                *status = s;
                return (int32_t)(i + 1);
            }
            continue;
        }
        for (int64_t j = 0; j < st->n; j++)
            data[j] = roots[st->operands[2 * j]] + st->operands[2 * j + 1];
        int32_t s = st->fn(data, st->shapes, st->strides);
        if (s) {
            *status = s;
            return (int32_t)(i + 1);
        }
    }
    return 0;
}

/* One call of a plan from Python (``Plan.fast_path``), with one ctypes argument: first the
 * roots of the call's arrays are read from the NumPy array objects themselves (the data
 * pointer is the first field after the object header in PyArrayObject_fields, which is
 * what NumPy's own PyArray_DATA reads; the runtime finds and checks the offset at load,
 * ``Library.call_runner``), then the steps run. Asking NumPy for a pointer from Python
 * costs more than the kernels of a small model's call. */
typedef struct {
    int64_t n_steps;
    const aotk_step *steps;
    char **roots;
    int32_t *status;
    int64_t n_arrays;
    const int64_t *array_roots; /* per array: the root it sets */
    char *const *arrays;        /* per array: the ndarray object, written per call */
    int64_t data_offset;        /* of the data pointer inside an ndarray object */
} aotk_call;

EXPORT int32_t aotk_run_call(const aotk_call *c) {
    for (int64_t i = 0; i < c->n_arrays; i++)
        c->roots[c->array_roots[i]] = *(char *const *)(c->arrays[i] + c->data_offset);
    return aotk_run_steps(c->n_steps, c->steps, c->roots, c->status);
}

/* ---- Scan loops (aotkernels/pytensor/scan_loop.py) ------------------------------------
 * A step whose fn is 0 runs the kernel steps of a Scan's inner graph n_iter times. The body's
 * operands index a root table of the loop's own (the inner plan's roots): per iteration the
 * roots of the inner inputs are set to rows of the caller's buffers (sequences, the taps of
 * recurrent outputs, non-sequences), the body runs, and each inner output is stored into
 * its row of an output buffer. Rows advance by a byte stride, modulo the buffer's length for
 * PyTensor's circular (save-memory) buffers. Before the loop, outputs that are not computed
 * in place of their initial state get a copy of it; after it, circular buffers are rotated
 * into time order as Scan.perform does. The loop's table and the body's scratch are
 * allocated per run, so the caller's roots are only read and concurrent calls share
 * nothing written. A failure returns (inner step << 16) | (its status & 0xffff), or 1 when
 * no memory could be had. */
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t root, offset; /* the caller's root; byte offset of row 0 from it */
    int64_t stride;       /* bytes from one row to the next */
    int64_t start, period, shift; /* row of iteration t: (start + t) % period + shift
                                     (period 0: start + t + shift) */
} aotk_rows;

typedef struct {
    int64_t local; /* the loop's root set to the row of each iteration */
    aotk_rows at;
} aotk_bind;

typedef struct {
    int64_t local, offset, nbytes; /* after the body: nbytes at the loop's root + offset ... */
    aotk_rows at;                  /* ... go to this row */
} aotk_store;

typedef struct {
    aotk_rows dst, src; /* row k of src to row k of dst (start 0, period 0, shift 0) */
    int64_t rows, nbytes;
} aotk_copy;

typedef struct {
    aotk_rows buf;                       /* rows k addressed as in aotk_copy */
    int64_t rows, nbytes, shift, zero_from; /* rotate left by shift; zero rows >= zero_from */
} aotk_reorder;

typedef struct {
    int64_t n_iter;
    int64_t n_local;
    char *const *fixed; /* n_local pointers: the body's constants, 0 elsewhere */
    int64_t arena_bytes, n_scratch; /* a multiple of 64; pairs: loop root, byte offset */
    const int64_t *scratch;
    int64_t n_binds;
    const aotk_bind *binds;
    int64_t n_steps;
    const aotk_step *steps;
    int64_t n_stores;
    const aotk_store *stores;
    int64_t n_copies;
    const aotk_copy *copies;
    int64_t n_reorders;
    const aotk_reorder *reorders;
} aotk_loop;

static inline char *row_at(char *const *roots, const aotk_rows *r, int64_t t) {
    int64_t k = r->period ? (r->start + t) % r->period : r->start + t;
    return roots[r->root] + r->offset + (k + r->shift) * r->stride;
}

static int32_t run_loop(const void *loop, char *const *roots) {
    const aotk_loop *L = (const aotk_loop *)loop;
    size_t table = ((size_t)L->n_local * sizeof(char *) + 63) & ~(size_t)63;
    char *mem = aligned_alloc(64, table + (size_t)L->arena_bytes);
    if (!mem) return 1;
    char **local = (char **)mem;
    memcpy(local, L->fixed, (size_t)L->n_local * sizeof(char *));
    for (int64_t i = 0; i < L->n_scratch; i++)
        local[L->scratch[2 * i]] = mem + table + L->scratch[2 * i + 1];
    for (int64_t i = 0; i < L->n_copies; i++) {
        const aotk_copy *c = &L->copies[i];
        for (int64_t k = 0; k < c->rows; k++)
            memmove(row_at(roots, &c->dst, k), row_at(roots, &c->src, k), (size_t)c->nbytes);
    }
    int32_t rc = 0;
    for (int64_t t = 0; t < L->n_iter; t++) {
        for (int64_t i = 0; i < L->n_binds; i++)
            local[L->binds[i].local] = row_at(roots, &L->binds[i].at, t);
        int32_t s = 0;
        int32_t failed = aotk_run_steps(L->n_steps, L->steps, local, &s);
        if (failed) {
            rc = (int32_t)(((uint32_t)failed << 16) | ((uint32_t)s & 0xffffu));
            break;
        }
        for (int64_t i = 0; i < L->n_stores; i++) {
            const aotk_store *st = &L->stores[i];
            memmove(row_at(roots, &st->at, t), local[st->local] + st->offset,
                    (size_t)st->nbytes);
        }
    }
    for (int64_t i = 0; !rc && i < L->n_reorders; i++) {
        const aotk_reorder *r = &L->reorders[i];
        if (r->shift) {
            char *tmp = malloc((size_t)(r->rows * r->nbytes));
            if (!tmp) {
                rc = 1;
                break;
            }
            for (int64_t k = 0; k < r->rows; k++)
                memcpy(tmp + k * r->nbytes, row_at(roots, &r->buf, (k + r->shift) % r->rows),
                       (size_t)r->nbytes);
            for (int64_t k = 0; k < r->rows; k++)
                memcpy(row_at(roots, &r->buf, k), tmp + k * r->nbytes, (size_t)r->nbytes);
            free(tmp);
        }
        for (int64_t k = r->zero_from; k < r->rows; k++)
            memset(row_at(roots, &r->buf, k), 0, (size_t)r->nbytes);
    }
    free(mem);
    return rc;
}
/* ---- end of Scan loops --------------------------------------------------------------- */

/* SciPy's special functions (psi, erfcx, gammainc, ...). Kernels of SciPy-backed ops call
 * through this table (kernels/special.py); the runtime fills it from scipy.special's
 * cython_special capsules when such an op is first resolved (aotk_set_special). An empty
 * slot makes the kernel fail with status 1 before any call through it. */
#define AOTK_SPECIAL_SLOTS 64 /* kernels/scalar_ops.py SPECIAL_SLOTS */
HIDDEN void *aotk_special[AOTK_SPECIAL_SLOTS];

EXPORT int32_t aotk_set_special(int64_t n, void *const *fns) {
    if (n < 0 || n > AOTK_SPECIAL_SLOTS) return -1;
    for (int64_t i = 0; i < n; i++)
        if (!fns[i]) return -1;
    for (int64_t i = 0; i < n; i++) aotk_special[i] = fns[i];
    return 0;
}

/* Plans as C functions for samplers (aotkernels/pytensor/cplan.py, aotkernels/nutpie.py):
 * nutpie's logp and expand signatures over a plan whose every item is a kernel step. The
 * plan is read-only and shared; each call makes its own arena (root table, intermediates,
 * scratch), so any number of threads may call it at once, and no Python object is touched.
 * The sampler's x is the input root itself (value variables are offsets into it); an
 * output that is a whole root is computed in the caller's buffer, any other is copied
 * there. Return codes are nutpie's numba backend's: 0, -1 (wrong sizes), 1 (a kernel's
 * error status, recoverable), 3 (non-finite gradient), 4 (non-finite logp); -2 for no
 * memory (fatal) and for a failed expand. */
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t root;   /* root index */
    int64_t offset; /* byte offset of the value from the root */
    int64_t size;   /* doubles (C-contiguous float64, checked by the planner's caller) */
    int64_t direct; /* 1: the root is exactly this value: it points at the caller's buffer */
} aotk_out;

typedef struct {
    int64_t n_roots;
    char *const *shared;    /* pointers shared by every call (constants, static values,
                               other graph inputs); 0 where a call sets its own */
    int64_t x_root, x_size; /* the input vector's root, its length in doubles */
    int64_t n_scratch;
    const int64_t *scratch; /* pairs: root index, byte offset into the arena */
    int64_t arena_bytes;    /* root table first, then scratch; a multiple of 64 */
    int64_t n_steps;
    const aotk_step *steps;
    int64_t n_outs;
    const aotk_out *outs;
} aotk_plan;

static int64_t plan_call(const aotk_plan *p, const double *x, double *const *dst) {
    char *arena = aligned_alloc(64, (size_t)p->arena_bytes);
    if (!arena) return -2;
    char **roots = (char **)arena;
    memcpy(roots, p->shared, (size_t)p->n_roots * sizeof(char *));
    roots[p->x_root] = (char *)x;
    for (int64_t i = 0; i < p->n_scratch; i++)
        roots[p->scratch[2 * i]] = arena + p->scratch[2 * i + 1];
    for (int64_t i = 0; i < p->n_outs; i++)
        if (p->outs[i].direct) roots[p->outs[i].root] = (char *)dst[i];
    int32_t status = 0;
    int32_t failed = aotk_run_steps(p->n_steps, p->steps, roots, &status);
    if (!failed)
        for (int64_t i = 0; i < p->n_outs; i++)
            if (!p->outs[i].direct)
                memcpy(dst[i], roots[p->outs[i].root] + p->outs[i].offset,
                       (size_t)p->outs[i].size * sizeof(double));
    free(arena);
    return failed ? 1 : 0;
}

static int all_finite(const double *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* nutpie hands one user_data to both functions of a model: an aotk_model. Its plans may be
 * replaced while nutpie's threads call (fused kernels arriving: aotk_nutpie_swap); each
 * call reads its plan once, atomically, and a replaced plan stays alive for the model's
 * life (cplan.Model keeps it), so a call that began on it finishes on it. */
typedef struct {
    const aotk_plan *logp;   /* outputs: logp (one double), gradient (dim doubles) */
    const aotk_plan *expand; /* output: the values a trace stores (n_expanded doubles) */
} aotk_model;

static const aotk_plan *model_plan(void *user_data, int expand) {
    if (!user_data) return 0;
    aotk_model *m = (aotk_model *)user_data;
    return __atomic_load_n(expand ? &m->expand : &m->logp, __ATOMIC_ACQUIRE);
}

/* Publish plan p as the model's logp (which 0) or expand (1) plan: release order, so a
 * caller that reads the pointer sees the whole plan. Returns the plan it replaces. */
EXPORT const aotk_plan *aotk_nutpie_swap(void *user_data, int64_t which, const aotk_plan *p) {
    aotk_model *m = (aotk_model *)user_data;
    if (!m || !p || (which != 0 && which != 1)) return 0;
    return __atomic_exchange_n(which ? &m->expand : &m->logp, p, __ATOMIC_ACQ_REL);
}

EXPORT int64_t aotk_nutpie_logp(uint64_t dim, const double *x, double *grad, double *logp,
                                void *user_data) {
    const aotk_plan *p = model_plan(user_data, 0);
    if (!p || p->n_outs != 2 || (int64_t)dim != p->x_size || p->outs[0].size != 1 ||
        p->outs[1].size != (int64_t)dim)
        return -1;
    double *dst[2] = {logp, grad};
    int64_t rc = plan_call(p, x, dst);
    if (rc) return rc;
    if (!all_finite(grad, (int64_t)dim)) return 3;
    if (!isfinite(*logp)) return 4;
    return 0;
}

EXPORT int64_t aotk_nutpie_expand(uint64_t dim, uint64_t n_expanded, const double *x,
                                  double *out, void *user_data) {
    const aotk_plan *p = model_plan(user_data, 1);
    if (!p || p->n_outs != 1 || (int64_t)dim != p->x_size ||
        p->outs[0].size != (int64_t)n_expanded)
        return -1;
    double *dst[1] = {out};
    return plan_call(p, x, dst) ? -2 : 0;
}
