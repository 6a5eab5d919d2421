# Shared build settings for vicreg targets.

# vicreg_target_defaults(<target>): warnings (errors with VICREG_WERROR), include root.
function(vicreg_target_defaults tgt)
  target_compile_options(${tgt} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC flags a class that holds a type from an anonymous namespace unless both are in the main
    # file; in a unity batch no source is (cmake/UnityBuild.cmake), so there the warning says nothing.
    target_compile_options(${tgt} PRIVATE $<$<BOOL:$<TARGET_PROPERTY:UNITY_BUILD>>:-Wno-subobject-linkage>)
  endif()
  if(VICREG_WERROR)
    target_compile_options(${tgt} PRIVATE -Werror)
  endif()
  target_include_directories(${tgt} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()

# vicreg_add_test(<name> LABELS <labels...> SOURCES <files...> LIBS <libs...> [TIMEOUT s]
#                 [SERIAL] [RESOURCE_LOCK <name>])
# One gtest executable; every TEST() is registered with ctest (gtest_discover_tests) and labeled.
# tests/run.sh runs ctest with -j2: SERIAL keeps timing-sensitive tests (collective timeouts,
# alert windows, a browser) alone on the machine; RESOURCE_LOCK serializes tests sharing something
# global (e.g. Slurm daemons), letting other tests run beside them.
function(vicreg_add_test name)
  cmake_parse_arguments(T "SERIAL" "TIMEOUT;RESOURCE_LOCK" "LABELS;SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  vicreg_target_defaults(${name})
  # A suite's files each read as a standalone suite (their own helpers in anonymous namespaces), and a
  # suite has few files: no unity batches here (cmake/UnityBuild.cmake).
  set_target_properties(${name} PROPERTIES UNITY_BUILD OFF)
  target_compile_definitions(${name} PRIVATE
    VICREG_SOURCE_DIR="${PROJECT_SOURCE_DIR}" VICREG_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set(extra)
  if(T_SERIAL)
    list(APPEND extra RUN_SERIAL TRUE)
  endif()
  if(T_RESOURCE_LOCK)
    list(APPEND extra RESOURCE_LOCK ${T_RESOURCE_LOCK})
  endif()
  gtest_discover_tests(${name}
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT} ${extra}
    DISCOVERY_TIMEOUT 60)
endfunction()
