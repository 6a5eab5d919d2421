# Precompiled LibTorch headers: every translation unit of a target that links LibTorch spends ~9 s
# parsing <ATen/ATen.h> and the nn headers before compiling a line of its own (about 60% of a cold
# build). With VICREG_PCH those headers are parsed once per build into a GCC/Clang precompiled
# header that each such target reuses (target_precompile_headers REUSE_FROM): about a quarter less
# compile CPU for such a source (docs/OPERATIONS.md "What we test" has the measured numbers).
#
# Two host targets build the header, because GCC refuses a PCH made with other -fPIC/-fPIE
# settings: vicreg_pch_lib for libraries (-fPIC) and vicreg_pch_exe for executables (-fPIE).
# Every other target is found by vicreg_apply_torch_pch() at the end of the top-level CMakeLists:
# a library or executable whose link libraries reach LibTorch, directly or through other vicreg
# targets. A target opts out with set_target_properties(<t> PROPERTIES VICREG_NO_PCH ON).
#
# Off by default in sanitizer builds (their compile flags differ per target group, and those
# builds compile few LibTorch sources). ccache: the launcher passes the sloppiness ccache needs to
# cache PCH users (top-level CMakeLists.txt).

set(_vicreg_pch_default ON)
if(NOT VICREG_SANITIZE STREQUAL "")
  set(_vicreg_pch_default OFF)
endif()
option(VICREG_PCH "Precompile LibTorch's headers once for every target that links LibTorch" ${_vicreg_pch_default})

# The headers: what most worker and test sources include (the header set is part of every user's
# compile, so only the widely used ones; adding a rarely used one costs every TU its load time).
set(VICREG_PCH_HEADERS <ATen/ATen.h> <torch/nn/module.h> <torch/nn/modules/linear.h> <c10/core/GradMode.h>)

if(VICREG_PCH)
  add_library(vicreg_pch_lib STATIC ${PROJECT_SOURCE_DIR}/cmake/pch/pch_host.cc)
  target_link_libraries(vicreg_pch_lib PRIVATE ${TORCH_LIBRARIES})
  target_precompile_headers(vicreg_pch_lib PRIVATE ${VICREG_PCH_HEADERS})
  add_executable(vicreg_pch_exe ${PROJECT_SOURCE_DIR}/cmake/pch/pch_host_main.cc)
  target_link_libraries(vicreg_pch_exe PRIVATE ${TORCH_LIBRARIES})
  target_precompile_headers(vicreg_pch_exe PRIVATE ${VICREG_PCH_HEADERS})
  set_target_properties(vicreg_pch_lib vicreg_pch_exe PROPERTIES VICREG_NO_PCH ON)
endif()

# _vicreg_reaches_torch(<target> <out-var>): TRUE if <target>'s link libraries reach LibTorch.
function(_vicreg_reaches_torch tgt out)
  get_property(known GLOBAL PROPERTY _vicreg_torch_${tgt} SET)
  if(known)
    get_property(v GLOBAL PROPERTY _vicreg_torch_${tgt})
    set(${out} ${v} PARENT_SCOPE)
    return()
  endif()
  set_property(GLOBAL PROPERTY _vicreg_torch_${tgt} FALSE)   # cycles end here
  set(result FALSE)
  get_target_property(imported ${tgt} IMPORTED)
  if(imported)
    set(props INTERFACE_LINK_LIBRARIES)
  else()
    set(props LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
  endif()
  foreach(p ${props})
    get_target_property(libs ${tgt} ${p})
    if(NOT libs)
      continue()
    endif()
    foreach(lib ${libs})
      if(lib STREQUAL "torch" OR lib STREQUAL "torch_library" OR lib STREQUAL "torch_cpu")
        set(result TRUE)
      elseif(TARGET ${lib} AND NOT lib MATCHES "::")
        _vicreg_reaches_torch(${lib} sub)
        if(sub)
          set(result TRUE)
        endif()
      endif()
      if(result)
        break()
      endif()
    endforeach()
  endforeach()
  set_property(GLOBAL PROPERTY _vicreg_torch_${tgt} ${result})
  set(${out} ${result} PARENT_SCOPE)
endfunction()

function(_vicreg_targets_in dir out)
  get_property(t DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(s ${subs})
    _vicreg_targets_in(${s} st)
    list(APPEND t ${st})
  endforeach()
  set(${out} ${t} PARENT_SCOPE)
endfunction()

# vicreg_apply_torch_pch(): called once, after every add_subdirectory.
function(vicreg_apply_torch_pch)
  if(NOT VICREG_PCH)
    return()
  endif()
  _vicreg_targets_in(${PROJECT_SOURCE_DIR} all)
  set(n 0)
  foreach(tgt ${all})
    get_target_property(type ${tgt} TYPE)
    get_target_property(skip ${tgt} VICREG_NO_PCH)
    if(skip OR NOT type MATCHES "^(STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|EXECUTABLE)$")
      continue()
    endif()
    _vicreg_reaches_torch(${tgt} uses)
    if(NOT uses)
      continue()
    endif()
    # A source with its own compile options (e.g. -fno-math-errno) would make GCC refuse the
    # header (it checks such options against those it was built with): it compiles without it.
    get_target_property(srcs ${tgt} SOURCES)
    get_target_property(srcdir ${tgt} SOURCE_DIR)
    foreach(src ${srcs})
      if(NOT IS_ABSOLUTE ${src})
        set(src ${srcdir}/${src})
      endif()
      get_source_file_property(opts ${src} TARGET_DIRECTORY ${tgt} COMPILE_OPTIONS)
      get_source_file_property(flags ${src} TARGET_DIRECTORY ${tgt} COMPILE_FLAGS)
      if(opts OR flags)
        set_source_files_properties(${src} TARGET_DIRECTORY ${tgt} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
      endif()
    endforeach()
    if(type STREQUAL "EXECUTABLE")
      target_precompile_headers(${tgt} REUSE_FROM vicreg_pch_exe)
    else()
      target_precompile_headers(${tgt} REUSE_FROM vicreg_pch_lib)
    endif()
    math(EXPR n "${n} + 1")
  endforeach()
  message(STATUS "vicreg: precompiled LibTorch headers for ${n} targets (VICREG_PCH)")
endfunction()
