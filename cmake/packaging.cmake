# Debian packages with `cpack -G DEB` from a build configured for /usr
# (scripts/check-deb.sh builds, installs, checks and removes them):
#   libtapegrad0     the shared library (component lib)
#   libtapegrad-dev  header, static library, libtapegrad.so link, tapegrad.pc,
#                    the CMake package (component dev)
#   tapegrad         the command, its man page, bash completion (component cli)
# Build them with -DCMAKE_INSTALL_PREFIX=/usr (a multiarch libdir, no RPATH in the
# .pc) and -DTAPEGRAD_NATIVE=OFF (a package runs on any x86-64, not only this CPU).
set(CPACK_PACKAGE_NAME tapegrad)
set(CPACK_PACKAGE_VENDOR "tapegrad")
set(CPACK_PACKAGE_CONTACT "tapegrad maintainers <tapegrad@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "small reverse-mode autograd library for classifiers in C")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_GENERATOR DEB)
set(CPACK_COMPONENTS_ALL lib dev cli)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
# Runtime dependencies from the binaries' NEEDED entries, as dh_shlibdeps does.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)

set(CPACK_DEBIAN_LIB_PACKAGE_NAME libtapegrad0)
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
# A shlibs file and the ldconfig trigger, as for any Debian shared library.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON) # only libtapegrad0 has a shared library
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_COMPONENT_LIB_DESCRIPTION "tapegrad: reverse-mode autograd for small classifiers in C (shared library)
 Tensors, a tape, ops with their backward, gradient checking, and a classifier
 toolkit (JSON configs, CSV and IDX data, safetensors checkpoints).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libtapegrad-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(TAPEGRAD_DEB_DEV_DEPENDS "libtapegrad0 (= ${PROJECT_VERSION}-1), libcjson-dev, zlib1g-dev")
if(TAPEGRAD_BLAS)
  string(APPEND TAPEGRAD_DEB_DEV_DEPENDS ", libopenblas-dev")
endif()
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "${TAPEGRAD_DEB_DEV_DEPENDS}")
set(CPACK_COMPONENT_DEV_DESCRIPTION "tapegrad: reverse-mode autograd for small classifiers in C (development files)
 The header tapegrad.h (the manual), the static library, tapegrad.pc for
 pkg-config and the CMake package for find_package(tapegrad).")

set(CPACK_DEBIAN_CLI_PACKAGE_NAME tapegrad)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION science)
if(TAPEGRAD_BLAS)
  # The command loads OpenBLAS with dlopen on its first product (tools/blas_lazy.c), so shlibdeps
  # cannot see it: name it (the detected dependencies are added to this).
  set(CPACK_DEBIAN_CLI_PACKAGE_DEPENDS "libopenblas0")
endif()
set(CPACK_COMPONENT_CLI_DESCRIPTION "train, evaluate and check small classifiers from JSON configs
 The tapegrad command: train (progress, test accuracy, confusion matrix,
 learning-curve plots), eval, predict and gradcheck; man page and bash
 completion.")

include(CPack)
