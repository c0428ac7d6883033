# Helpers in the spirit of abseil's absl_cc_library / absl_cc_test.
include(GoogleTest)

# sluice_cc_library(NAME name SRCS ... DEPS ... PRIVATE_DEPS ...)
# Declares static library sluice_<name> with alias sluice::<name>.
function(sluice_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(sluice_${ARG_NAME} STATIC ${ARG_SRCS})
  add_library(sluice::${ARG_NAME} ALIAS sluice_${ARG_NAME})
  target_include_directories(sluice_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(sluice_${ARG_NAME} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# sluice_cc_test(NAME name SRCS ... DEPS ... LABEL unit|integration|e2e)
# One gtest executable; each TEST becomes a ctest case carrying LABEL.
function(sluice_cc_test)
  cmake_parse_arguments(ARG "" "NAME;LABEL;TIMEOUT" "SRCS;DEPS" ${ARGN})
  if(NOT ARG_LABEL)
    set(ARG_LABEL unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} sluice::testing GTest::gmock_main)
  gtest_discover_tests(${ARG_NAME}
    PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
endfunction()
