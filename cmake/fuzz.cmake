# libFuzzer targets for the four loaders (docs/fuzzing.md). Included by the top
# CMakeLists.txt when TAPEGRAD_FUZZ is ON; scripts/fuzz.sh configures, builds
# and runs them. Needs clang (libFuzzer ships with it: libclang-rt-14-dev).
#
# The library is compiled a second time, as tapegrad_objects is (its options,
# definitions and libraries: -march=native, OpenMP, BLAS as configured), plus
# coverage instrumentation (fuzzer-no-link) and AddressSanitizer +
# UndefinedBehaviorSanitizer, so the fuzzer sees the loaders' branches; each
# target links libFuzzer's main. scripts/fuzz.sh turns BLAS and OpenMP off:
# neither is on a loader's path.

if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "TAPEGRAD_FUZZ needs clang (libFuzzer), not ${CMAKE_C_COMPILER_ID}: configure with CC=clang")
endif()
if(TAPEGRAD_SANITIZE)
  message(FATAL_ERROR "TAPEGRAD_FUZZ brings its own sanitizers: configure it with TAPEGRAD_SANITIZE empty")
endif()

set(TAPEGRAD_FUZZ_SANITIZERS address,undefined)
set(TAPEGRAD_FUZZ_FLAGS -g -fno-omit-frame-pointer -fno-sanitize-recover=all)
set(TAPEGRAD_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz)

add_library(tapegrad_fuzz_lib STATIC ${TAPEGRAD_SOURCES} ${TAPEGRAD_FUZZ_DIR}/fuzz_inputs.c)
target_include_directories(tapegrad_fuzz_lib
  PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include ${TAPEGRAD_FUZZ_DIR}
  PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
foreach(property COMPILE_OPTIONS COMPILE_DEFINITIONS LINK_LIBRARIES)
  get_target_property(TAPEGRAD_FUZZ_LIB_${property} tapegrad_objects ${property})
  if(NOT TAPEGRAD_FUZZ_LIB_${property})
    set(TAPEGRAD_FUZZ_LIB_${property} "")
  endif()
endforeach()
target_compile_options(tapegrad_fuzz_lib PRIVATE ${TAPEGRAD_FUZZ_LIB_COMPILE_OPTIONS}
  -fsanitize=fuzzer-no-link,${TAPEGRAD_FUZZ_SANITIZERS} ${TAPEGRAD_FUZZ_FLAGS})
target_compile_definitions(tapegrad_fuzz_lib PRIVATE ${TAPEGRAD_FUZZ_LIB_COMPILE_DEFINITIONS})
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
target_link_libraries(tapegrad_fuzz_lib PUBLIC ${TAPEGRAD_FUZZ_LIB_LINK_LIBRARIES} PkgConfig::JANSSON m)

add_custom_target(tapegrad_fuzz)
foreach(target config csv idx safetensors)
  add_executable(fuzz_${target} ${TAPEGRAD_FUZZ_DIR}/fuzz_${target}.c)
  target_compile_options(fuzz_${target} PRIVATE
    -fsanitize=fuzzer,${TAPEGRAD_FUZZ_SANITIZERS} ${TAPEGRAD_FUZZ_FLAGS})
  target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,${TAPEGRAD_FUZZ_SANITIZERS})
  target_link_libraries(fuzz_${target} PRIVATE tapegrad_fuzz_lib)
  add_dependencies(tapegrad_fuzz fuzz_${target})
endforeach()

# Writes the binary seeds (tests/fuzz/corpus/idx and safetensors, the
# checkpoints with tg_model_save); see tests/fuzz/make_seeds.c. Not run by fuzz.sh.
add_executable(fuzz_make_seeds ${TAPEGRAD_FUZZ_DIR}/make_seeds.c)
target_compile_options(fuzz_make_seeds PRIVATE -fsanitize=${TAPEGRAD_FUZZ_SANITIZERS} ${TAPEGRAD_FUZZ_FLAGS})
target_link_options(fuzz_make_seeds PRIVATE -fsanitize=${TAPEGRAD_FUZZ_SANITIZERS})
target_link_libraries(fuzz_make_seeds PRIVATE tapegrad_fuzz_lib)
