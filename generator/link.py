"""Kernel IR -> one optimised object per target, with exported entry points only.

Steps (measured in the feasibility report, section 1):
1. ``kernel_module``: parse each kernel's IR, add the C-ABI entry point, and make every
   other definition internal *before* linking. Kernels compiled in different processes can
   share a mangled name; internal symbols are renamed on clash instead of silently merged.
2. ``tree_link``: pairwise linking (sequential linking is quadratic in the kernel count).
3. ``define_libm_ops``: the target's choice of libm or vector bodies (``Target.libm_ops``)
   becomes a constant, so O3 keeps one body per op.
4. ``optimise``: O3 for the target machine, so vector width follows the target.
5. ``emit_object``: a PIC object, which CMake links with the C shim into the library.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import llvmlite.binding as llvm

from aotkernels.kernels.scalar_ops import LIBM_SYMBOL, libm_mask
from aotkernels.targets import Target

_ENTRY = """
declare i32 @"{inner}"(ptr, ptr, ptr, ptr, ptr)
define i32 @"{export}"(ptr %data, ptr %shapes, ptr %strides) {{
  %ret = alloca i32
  %exc = alloca ptr
  store i32 0, ptr %ret
  store ptr null, ptr %exc
  %status = call i32 @"{inner}"(ptr %ret, ptr %exc, ptr %data, ptr %shapes, ptr %strides)
  %ok = icmp eq i32 %status, 0
  %value = load i32, ptr %ret
  %result = select i1 %ok, i32 %value, i32 %status
  ret i32 %result
}}
"""
"""The exported entry: numba's status if the body raised, else the body's own return value.

numba's ``cfunc.*`` wrapper is not used: its error path needs the Python C-API.
"""

_initialised = False


def _init() -> None:
    """Once per process.

    No ``-vector-library=LIBMVEC-X86``: it made exp/log/sin loops 1.4-2.4x faster, but LLVM 20
    maps vector widths to libmvec variants without checking target features, so baseline
    (SSE2) code called the AVX2 ``_ZGVdN4v_exp`` and computed garbage (benchmarks/RESULTS.md).
    """
    global _initialised
    if not _initialised:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        _initialised = True


def target_machine(target: Target) -> llvm.TargetMachine:
    """A shipped library's CPU target (the JIT uses ``host_machine``)."""
    _init()
    t = llvm.Target.from_triple(target.triple)
    return t.create_target_machine(cpu=target.cpu, features=target.features, opt=3,
                                   reloc="pic", codemodel="default")


def host_machine() -> llvm.TargetMachine:
    """The build host's CPU, for JIT-compiled kernels that only ever run here."""
    _init()
    t = llvm.Target.from_default_triple()
    return t.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                   features=llvm.get_host_cpu_features().flatten(), opt=3,
                                   reloc="pic", codemodel="jitdefault")


def _internalise(mod: llvm.ModuleRef, keep: set[str]) -> None:
    for f in mod.functions:
        if not f.is_declaration and f.name not in keep:
            f.linkage = llvm.Linkage.internal
    for g in mod.global_variables:
        if not g.is_declaration:
            g.linkage = llvm.Linkage.internal


#: definitions of ``kernels/vecmath.py``'s functions (numba's mangled names), up to the
#: end of their parameter list, then the rest of the line
_ALWAYSINLINE = re.compile(r'^(define [^\n]*@"?_ZN10aotkernels7kernels7vecmath[^\n]*\))'
                           r'([^\n)]*\{)$', re.M)


def kernel_module(ir: str, inner: str, export: str) -> llvm.ModuleRef:
    """The kernel's module with its C entry point; vector-math functions are marked
    ``alwaysinline``: an nd kernel calls its body from several loops, and the inliner's
    size threshold would leave large bodies (erf, erfc) as calls that no loop widens."""
    _init()
    # on the text: llvmlite's add_function_attribute puts it on the return value
    mod = llvm.parse_assembly(_ALWAYSINLINE.sub(r"\1 alwaysinline\2", ir))
    entry = f'target triple = "{mod.triple}"\ntarget datalayout = "{mod.data_layout}"\n'
    mod.link_in(llvm.parse_assembly(entry + _ENTRY.format(inner=inner, export=export)))
    _internalise(mod, {export})
    return mod


def tree_link(mods: Sequence[llvm.ModuleRef]) -> llvm.ModuleRef:
    level = list(mods)
    if not level:
        raise ValueError("nothing to link")
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            level[i].link_in(level[i + 1])
            nxt.append(level[i])
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def define_libm_ops(mod: llvm.ModuleRef, libm_ops: tuple[str, ...]) -> None:
    """Define ``LIBM_SYMBOL`` (which vector-math ops call libm) as an internal constant,
    if any kernel in ``mod`` reads it: a target's ``libm_ops``. The JIT passes those of
    the library its process loaded, so both make the same choice."""
    try:
        mod.get_global_variable(LIBM_SYMBOL)
    except NameError:
        return
    head = f'target triple = "{mod.triple}"\ntarget datalayout = "{mod.data_layout}"\n'
    mod.link_in(llvm.parse_assembly(
        f"{head}@{LIBM_SYMBOL} = constant i64 {libm_mask(libm_ops)}\n"))
    mod.get_global_variable(LIBM_SYMBOL).linkage = llvm.Linkage.internal


def optimise(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """Retarget and run O3 with loop and SLP vectorisation, then drop dead code."""
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    mpm = llvm.create_new_module_pass_manager()
    mpm.add_global_dead_code_eliminate_pass()
    mpm.add_strip_dead_prototype_pass()
    mpm.run(mod, pb)
    mod.verify()


def link_object(kernels, target: Target) -> bytes:
    """``kernels``: objects with ``ir``, ``inner`` and ``symbol``. Returns a PIC object.

    Runs in pool workers (``generator.stage``): the target is passed, not a TargetMachine.
    """
    tm = target_machine(target)
    mod = tree_link([kernel_module(k.ir, k.inner, k.symbol) for k in kernels])
    define_libm_ops(mod, target.libm_ops)
    optimise(mod, tm)
    return tm.emit_object(mod)
