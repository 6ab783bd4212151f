# Fails the build if LIB depends on any shared object but libc/libm (and the dynamic loader).
# -Wl,-z,defs already rejects undefined symbols; this guards against a stray -l flag.
# READELF: the toolchain's own (aarch64-linux-gnu-readelf when cross-linking).
if(NOT READELF)
  set(READELF readelf)
endif()
execute_process(COMMAND "${READELF}" -d "${LIB}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf failed on ${LIB}")
endif()
string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[([^]]+)\\]" needed "${out}")
foreach(entry ${needed})
  string(REGEX REPLACE ".*\\[([^]]+)\\]" "\\1" so "${entry}")
  if(NOT so MATCHES "^(libc|libm|ld-linux[^.]*)\\.so")
    message(FATAL_ERROR "${LIB} needs ${so}: only libc and libm are allowed")
  endif()
endforeach()
