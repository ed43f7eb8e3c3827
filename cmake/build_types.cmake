# Build types beyond CMake's own four, and the precompiled headers of Clang
# builds. Included by the top-level CMakeLists.txt after project().

# CMake creates an empty cache entry for the flags of a build type it does not
# know; volt_build_type_flags() fills it unless a value was given (-D...).
function(volt_build_type_flags variable value)
  if(NOT ${variable})
    set(${variable} "${value}" CACHE STRING "Flags of a Volt build type" FORCE)
  endif()
  mark_as_advanced(${variable})
endfunction()

# RelNoDebInfo: RelWithDebInfo's -O2 code without debug info. CI's main build
# uses it: -g made each C++ file take about a third longer to compile, and no
# step of CI reads debug info. Developers keep RelWithDebInfo (the default).
volt_build_type_flags(CMAKE_CXX_FLAGS_RELNODEBINFO "-O2 -DNDEBUG")
volt_build_type_flags(CMAKE_CUDA_FLAGS_RELNODEBINFO "-O2 -DNDEBUG")

# Sanitize: AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer;
# every report ends the process with an error. Assertions stay on. -O0 because
# with both sanitizers on, -O1 took twice as long to compile as -O0 (the
# optimiser works through every check they insert), and CI compiles this folder
# on every run.
set(volt_sanitize_flags
    "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer")
volt_build_type_flags(CMAKE_CXX_FLAGS_SANITIZE "-O0 ${volt_sanitize_flags}")
foreach(kind EXE SHARED MODULE)
  volt_build_type_flags(CMAKE_${kind}_LINKER_FLAGS_SANITIZE "${volt_sanitize_flags}")
endforeach()
# Clang also reads the exemptions for defects outside Volt's code.
add_compile_options(
  "$<$<AND:$<CONFIG:Sanitize>,$<COMPILE_LANG_AND_ID:CXX,Clang>>:-fsanitize-ignorelist=${CMAKE_CURRENT_LIST_DIR}/sanitizer_ignorelist.txt>")

# volt_precompile_headers(targets...): Clang builds compile CAF, nlohmann/json
# and the common standard headers once per target instead of once per file.
# Measured on a CAF-heavy file at -O0 with the sanitizers: 30% less compile
# time with Clang's -fpch-instantiate-templates (CMake adds it). GCC is left
# alone: its precompiled header (200 MB) took as long to load as the headers
# took to parse.
function(volt_precompile_headers)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    return()
  endif()
  foreach(target IN LISTS ARGN)
    target_precompile_headers(${target} PRIVATE
      "$<$<COMPILE_LANGUAGE:CXX>:${PROJECT_SOURCE_DIR}/cmake/precompiled.hpp>")
  endforeach()
endfunction()
