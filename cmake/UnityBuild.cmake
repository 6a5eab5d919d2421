# Unity (jumbo) build: CMake concatenates up to VICREG_UNITY_BATCH of a target's sources into one
# translation unit. Most of a LibTorch source's compile time is the headers' inline and template
# code, which GCC compiles again in every TU that includes them (the precompiled header of
# cmake/TorchPch.cmake saves the parsing, not that); a batch compiles it once for 8 sources. On
# 2 cores this halves a cold build of the quickstart's five binaries (docs/OPERATIONS.md
# "What we test" has the measured numbers), which the quickstart spends on training instead.
#
# What it asks of the sources: names in anonymous namespaces (and file-level statics) must not
# collide between the .cc files of one target, since a batch is one TU. A collision is a compile
# error (redefinition), never a silent change: CI builds with the default (ON), so it shows there.
# Generated sources (protobuf/gRPC, proto/CMakeLists.txt) and the test suites (vicreg_add_test in
# cmake/VicregHelpers.cmake) opt out; any target can with
# set_target_properties(<t> PROPERTIES UNITY_BUILD OFF).
#
# OFF by default in sanitizer builds, as VICREG_PCH: few LibTorch sources, per-target flags.
# Developers editing one file of a large target may prefer -DVICREG_UNITY_BUILD=OFF (an edit then
# recompiles that file only, not its batch).

set(_vicreg_unity_default ON)
if(NOT VICREG_SANITIZE STREQUAL "")
  set(_vicreg_unity_default OFF)
endif()
option(VICREG_UNITY_BUILD "Compile each target's sources in batches (CMake unity build)" ${_vicreg_unity_default})
set(VICREG_UNITY_BATCH 8 CACHE STRING "Sources per unity batch (VICREG_UNITY_BUILD)")
add_feature_info(VICREG_UNITY_BUILD VICREG_UNITY_BUILD "sources compiled in batches of ${VICREG_UNITY_BATCH}")

# Targets created after this point (every vicreg target: included before the add_subdirectory calls)
# take these defaults.
set(CMAKE_UNITY_BUILD ${VICREG_UNITY_BUILD})
set(CMAKE_UNITY_BUILD_BATCH_SIZE ${VICREG_UNITY_BATCH})
