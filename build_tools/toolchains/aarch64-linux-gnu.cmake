# Cross-link aarch64 kernel libraries on another Linux host with Debian's GNU cross
# toolchain (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross; see build_tools/setup_cross.sh).
# build-kernels passes this file for every aarch64 build; CMake then finds the cross
# binutils (CMAKE_READELF = aarch64-linux-gnu-readelf) from the compiler's prefix.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
