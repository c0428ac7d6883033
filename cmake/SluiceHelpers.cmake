# Helpers in the spirit of abseil's absl_cc_library / absl_cc_test.
#
# Include paths are scoped: every #include is rooted at the repository ("pkg/engine/engine.h"), but
# the repository root is on no include path. A library's public headers (HDRS) are reachable
# through a folder of links of its own, ${PROJECT_BINARY_DIR}/include/<name>, which is a PUBLIC
# include directory: a target sees another module's public headers only when it links that module.
# Its own folder (internal headers included) is reachable through a second folder of links that
# only its own sources and the tests declared beside it get.
include(GoogleTest)

# Returns in `out_var` an include directory under which the current source folder, and nothing
# else, appears at its path from the repository root.
function(_sluice_folder_view out_var)
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  string(REPLACE "/" "_" key "${rel}")
  set(view ${PROJECT_BINARY_DIR}/folders/${key})
  get_filename_component(parent ${view}/${rel} DIRECTORY)
  file(MAKE_DIRECTORY ${parent})
  if(NOT EXISTS ${view}/${rel})
    file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR} ${view}/${rel} SYMBOLIC)
  endif()
  set(${out_var} ${view} PARENT_SCOPE)
endfunction()

# sluice_cc_library(NAME name HDRS ... SRCS ... DEPS ... PRIVATE_DEPS ...)
# Declares library sluice_<name> with alias sluice::<name>: static when it has SRCS, header-only
# (INTERFACE) otherwise. HDRS are its public headers, relative to the current folder.
function(sluice_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "HDRS;SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  if(NOT ARG_HDRS)
    message(FATAL_ERROR "sluice_cc_library(${ARG_NAME}): list its public headers in HDRS")
  endif()
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  set(public_root ${PROJECT_BINARY_DIR}/include/${ARG_NAME})
  file(REMOVE_RECURSE ${public_root})
  foreach(header ${ARG_HDRS})
    get_filename_component(header_dir ${public_root}/${rel}/${header} DIRECTORY)
    file(MAKE_DIRECTORY ${header_dir})
    file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/${header} ${public_root}/${rel}/${header} SYMBOLIC)
  endforeach()
  if(ARG_SRCS)
    _sluice_folder_view(own_folder)
    add_library(sluice_${ARG_NAME} STATIC ${ARG_SRCS})
    target_include_directories(sluice_${ARG_NAME} PUBLIC ${public_root} PRIVATE ${own_folder})
    target_link_libraries(sluice_${ARG_NAME} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  else()
    add_library(sluice_${ARG_NAME} INTERFACE)
    target_include_directories(sluice_${ARG_NAME} INTERFACE ${public_root})
    target_link_libraries(sluice_${ARG_NAME} INTERFACE ${ARG_DEPS})
  endif()
  add_library(sluice::${ARG_NAME} ALIAS sluice_${ARG_NAME})
endfunction()

# sluice_cc_test(NAME name SRCS ... DEPS ... LABEL unit|integration|e2e)
# One gtest executable; each TEST becomes a ctest case carrying LABEL. It sees the public headers
# of what it links, and every header of the folder it is declared in.
function(sluice_cc_test)
  # The static build makes the shipped binary only; the tests run in the normal builds (and run
  # that binary as a child process).
  if(SLUICE_STATIC)
    return()
  endif()
  # ENVIRONMENT: NAME=VALUE settings for the test processes (ctest's ENVIRONMENT property).
  cmake_parse_arguments(ARG "" "NAME;LABEL;TIMEOUT" "SRCS;DEPS;ENVIRONMENT" ${ARGN})
  if(NOT ARG_LABEL)
    set(ARG_LABEL unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  _sluice_folder_view(own_folder)
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_include_directories(${ARG_NAME} PRIVATE ${own_folder})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} sluice::testing GTest::gmock_main)
  set(properties LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT})
  if(ARG_ENVIRONMENT)
    list(APPEND properties ENVIRONMENT "${ARG_ENVIRONMENT}")
  endif()
  gtest_discover_tests(${ARG_NAME}
    PROPERTIES ${properties}
    DISCOVERY_TIMEOUT 60)
endfunction()
