# Install step: record each installed library's size and SHA-256 in the installed manifest.
# The runtime checks both before dlopen: a truncated ELF can kill the process inside the
# dynamic loader (SIGBUS), so a damaged file must be caught before it is opened.
set(dir "${CMAKE_INSTALL_PREFIX}/${AOTK_LIB_DIR}")
file(READ "${dir}/manifest.json" manifest)
string(JSON ntargets LENGTH "${manifest}" targets)
math(EXPR last "${ntargets} - 1")
foreach(i RANGE ${last})
  string(JSON lib GET "${manifest}" targets ${i} library)
  file(SHA256 "${dir}/${lib}" digest)
  file(SIZE "${dir}/${lib}" size)
  string(JSON manifest SET "${manifest}" targets ${i} sha256 "\"${digest}\"")
  string(JSON manifest SET "${manifest}" targets ${i} bytes "${size}")
endforeach()
file(WRITE "${dir}/manifest.json" "${manifest}")
