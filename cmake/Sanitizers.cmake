# Sanitizer and fuzzer build settings (docs/OPERATIONS.md "What we test" says which targets CI
# builds this way and why).
#
#   -DVICREG_SANITIZE=address   AddressSanitizer + UndefinedBehaviorSanitizer (any error aborts)
#   -DVICREG_SANITIZE=thread    ThreadSanitizer (build only targets that do not link LibTorch)
#   -DVICREG_SANITIZE=          (default) no sanitizer
#
# Fuzzers (tests/fuzz): with clang, VICREG_LIBFUZZER (default ON under clang) builds them as
# libFuzzer binaries and instruments every target for coverage (-fsanitize=fuzzer-no-link); with
# gcc (or VICREG_LIBFUZZER=OFF) they get a plain main() that replays files/folders, which ctest
# runs on the checked-in corpus. LibTorch, gRPC and the other Debian libraries are not
# instrumented: tests/sanitizers/*.supp lists what is suppressed inside them, with a reason each.

set(VICREG_SANITIZE "" CACHE STRING "Sanitizer build: '' (none), 'address' (ASan+UBSan) or 'thread' (TSan)")
set_property(CACHE VICREG_SANITIZE PROPERTY STRINGS "" address thread)
option(VICREG_BUILD_FUZZERS "Build the fuzzers under tests/fuzz (libFuzzer under clang, corpus replay otherwise)" ON)

set(_vicreg_is_clang OFF)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  set(_vicreg_is_clang ON)
endif()
option(VICREG_LIBFUZZER "Link the fuzzers with libFuzzer (needs clang)" ${_vicreg_is_clang})
if(VICREG_LIBFUZZER AND NOT _vicreg_is_clang)
  message(FATAL_ERROR "VICREG_LIBFUZZER=ON needs clang (CMAKE_CXX_COMPILER=clang++); gcc builds replay the corpus")
endif()

if(VICREG_SANITIZE STREQUAL "address")
  # -fno-sanitize-recover: a UBSan finding fails the test instead of printing and going on.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
elseif(VICREG_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT VICREG_SANITIZE STREQUAL "")
  message(FATAL_ERROR "VICREG_SANITIZE must be '', 'address' or 'thread', got '${VICREG_SANITIZE}'")
endif()

if(NOT VICREG_SANITIZE STREQUAL "")
  # Sanitizer builds optimize lightly (fast to compile, readable stacks) with line tables only.
  if(_vicreg_is_clang)
    add_compile_options(-O1 -gline-tables-only)
  else()
    add_compile_options(-O1 -g1)
  endif()
  message(STATUS "vicreg: sanitizer build (${VICREG_SANITIZE}) with ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}")
endif()

if(VICREG_BUILD_FUZZERS AND VICREG_LIBFUZZER AND VICREG_SANITIZE STREQUAL "address")
  # Coverage feedback for libFuzzer from every vicreg target (the fuzzers link the real libraries);
  # the ASan runtime provides the coverage callbacks for the targets that are not fuzzers.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
