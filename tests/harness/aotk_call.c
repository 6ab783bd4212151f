/* Call kernels of an aotkernels library with the kernel ABI, from C: the runtime's Python
 * cannot run where the library does when the library is cross-built (tests/test_aarch64.py
 * runs this under qemu-aarch64).
 *
 *   aotk_call LIBRARY < calls
 *
 * Prints "abi <n> x86_level <n>" once, then reads one call a line:
 *
 *   SYMBOL NOPS NDIM  PATH_1 OFFSET_1 ... PATH_NOPS OFFSET_NOPS  SHAPES...  STRIDES...
 *
 * Operand i is the raw bytes of file PATH_i, its element (0, ..., 0) at byte OFFSET_i
 * (strides may be negative or 0); inputs come first, the output last, and SHAPES/STRIDES
 * are the NOPS * NDIM int64 values the ABI lays end to end. The call is
 * int32 kernel(void **data, const int64 *shapes, const int64 *strides); afterwards the
 * output's buffer is written back to its file and "SYMBOL STATUS" printed. Any problem
 * exits with status 2 and one line on stderr.
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPS 8
#define MAX_DIMS 8

typedef int32_t (*kernel_fn)(void **, const int64_t *, const int64_t *);

static void die(const char *what, const char *detail) {
    fprintf(stderr, "aotk_call: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static char *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open", path);
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = NULL;
    /* 64-byte aligned, as NumPy allocates: the kernels see what they see at run time */
    if (posix_memalign(&buf, 64, *size ? (size_t)*size : 1)) die("out of memory", path);
    if (*size && fread(buf, 1, (size_t)*size, f) != (size_t)*size) die("cannot read", path);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *buf, long size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, (size_t)size, f) != (size_t)size || fclose(f)) die("cannot write", path);
}

int main(int argc, char **argv) {
    if (argc != 2) die("usage", "aotk_call LIBRARY < calls");
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) die("dlopen failed", dlerror());
    int32_t (*abi)(void) = (int32_t (*)(void))dlsym(lib, "aotk_abi_version");
    int32_t (*level)(void) = (int32_t (*)(void))dlsym(lib, "aotk_x86_level");
    if (!abi || !level) die("not an aotkernels library", argv[1]);
    printf("abi %d x86_level %d\n", abi(), level());

    char symbol[256], paths[MAX_OPS][4096];
    int nops, ndim;
    while (scanf("%255s %d %d", symbol, &nops, &ndim) == 3) {
        if (nops < 1 || nops > MAX_OPS || ndim < 1 || ndim > MAX_DIMS) die("bad call", symbol);
        kernel_fn fn = (kernel_fn)dlsym(lib, symbol);
        if (!fn) die("no such symbol", symbol);
        void *data[MAX_OPS];
        char *bufs[MAX_OPS];
        long sizes[MAX_OPS];
        int64_t shapes[MAX_OPS * MAX_DIMS], strides[MAX_OPS * MAX_DIMS];
        for (int i = 0; i < nops; i++) {
            long long offset;
            if (scanf("%4095s %lld", paths[i], &offset) != 2) die("bad operand", symbol);
            bufs[i] = read_file(paths[i], &sizes[i]);
            if (offset < 0 || offset > sizes[i]) die("offset outside the buffer", paths[i]);
            data[i] = bufs[i] + offset;
        }
        for (int i = 0; i < nops * ndim; i++)
            if (scanf("%" SCNd64, &shapes[i]) != 1) die("bad shapes", symbol);
        for (int i = 0; i < nops * ndim; i++)
            if (scanf("%" SCNd64, &strides[i]) != 1) die("bad strides", symbol);
        int32_t status = fn(data, shapes, strides);
        write_file(paths[nops - 1], bufs[nops - 1], sizes[nops - 1]);
        for (int i = 0; i < nops; i++) free(bufs[i]);
        printf("%s %d\n", symbol, status);
        fflush(stdout);
    }
    return 0;
}
