# Third-party dependencies, all from Debian 12's packages. Each becomes one INTERFACE target
# (sluice_dep_<name>) so modules link a dependency the same way whether it is static or shared.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
if(SLUICE_STATIC)
  if(NOT EXISTS "${SLUICE_STATIC_PREFIX}/lib/libpq.a")
    message(FATAL_ERROR "SLUICE_STATIC needs SLUICE_STATIC_PREFIX from scripts/build-static.sh")
  endif()
  set(OPENSSL_USE_STATIC_LIBS ON)
  set(SLUICE_STATIC_DEPS ON)
endif()
find_package(OpenSSL REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
if(NOT SLUICE_STATIC)
  find_package(GTest REQUIRED)
  pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
endif()

add_library(sluice_dep_absl INTERFACE)
add_library(sluice_dep_yaml INTERFACE)
# In the test builds libpq stays shared: Debian's libpq.a needs libpgcommon/libpgport archives that
# no runtime package ships, and it would still pull Kerberos and LDAP in as shared libraries.
add_library(sluice_dep_pq INTERFACE)
if(SLUICE_STATIC)
  # libpq built without GSSAPI and LDAP (their archives are missing or drag GnuTLS, SASL, ...); it
  # needs PostgreSQL's common and port archives from the same source tree.
  target_include_directories(sluice_dep_pq SYSTEM INTERFACE ${SLUICE_STATIC_PREFIX}/include)
  target_link_libraries(sluice_dep_pq INTERFACE
    ${SLUICE_STATIC_PREFIX}/lib/libpq.a ${SLUICE_STATIC_PREFIX}/lib/libpgcommon_shlib.a
    ${SLUICE_STATIC_PREFIX}/lib/libpgport_shlib.a OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
else()
  target_link_libraries(sluice_dep_pq INTERFACE PkgConfig::LIBPQ)
endif()

if(SLUICE_STATIC_DEPS)
  # Debian's absl:: targets name the shared objects; the static archives must be named by hand.
  # A link group spares us listing them in dependency order.
  file(GLOB SLUICE_ABSL_ARCHIVES /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/libabsl_*.a)
  list(FILTER SLUICE_ABSL_ARCHIVES EXCLUDE REGEX "random_internal_distribution_test_util|scoped_set_env|failure_signal_handler")
  target_link_libraries(sluice_dep_absl INTERFACE
    "-Wl,--start-group" ${SLUICE_ABSL_ARCHIVES} "-Wl,--end-group" Threads::Threads)
  find_library(SLUICE_YAML_ARCHIVE NAMES libyaml-cpp.a REQUIRED)
  target_link_libraries(sluice_dep_yaml INTERFACE ${SLUICE_YAML_ARCHIVE})
  # Without SLUICE_STATIC, libstdc++ and libgcc stay shared: cpprestsdk, which Debian ships only as
  # a shared library, loads the shared ones anyway, and a second, static copy in the same process
  # would double their memory and give exceptions crossing libcpprest.so two runtimes to unwind
  # through.
else()
  target_link_libraries(sluice_dep_absl INTERFACE
    absl::status absl::statusor absl::strings absl::str_format absl::time absl::cleanup
    absl::synchronization absl::flat_hash_map absl::flat_hash_set)
  target_link_libraries(sluice_dep_yaml INTERFACE yaml-cpp)
endif()

# libpg_query (PostgreSQL 15's parser, for `sluice lint` only), always its static archive: Debian's
# libpg-query-dev. Its protobuf parse tree needs protobuf-c's header (libprotobuf-c-dev); the
# protobuf-c runtime itself is inside libpg_query.a.
find_library(SLUICE_PG_QUERY_ARCHIVE NAMES libpg_query.a REQUIRED)
find_path(SLUICE_PG_QUERY_INCLUDE pg_query.h REQUIRED)
find_path(SLUICE_PROTOBUF_C_INCLUDE protobuf-c/protobuf-c.h REQUIRED)
add_library(sluice_dep_pg_query INTERFACE)
target_include_directories(sluice_dep_pg_query SYSTEM INTERFACE
  ${SLUICE_PG_QUERY_INCLUDE} ${SLUICE_PROTOBUF_C_INCLUDE})
target_link_libraries(sluice_dep_pg_query INTERFACE ${SLUICE_PG_QUERY_ARCHIVE} Threads::Threads)

# cpprestsdk (the Kubernetes client, the operator's metrics and probe server, and the fake API
# server). Its config does not put OpenSSL on the link line of code that uses the HTTP client, so
# name it here (style.md).
if(SLUICE_STATIC)
  # The HTTP client and the asio listener (no websockets or compression), from
  # scripts/build-static.sh.
  find_package(cpprestsdk CONFIG REQUIRED PATHS ${SLUICE_STATIC_PREFIX} NO_DEFAULT_PATH)
else()
  find_package(cpprestsdk CONFIG REQUIRED)
endif()
add_library(sluice_dep_cpprest INTERFACE)
target_link_libraries(sluice_dep_cpprest INTERFACE cpprestsdk::cpprest OpenSSL::SSL OpenSSL::Crypto)
if(SLUICE_SANITIZE)
  # UBSan's vptr check misfires on cpprest's stream buffers: their type_info lives in the
  # uninstrumented libcpprest.so, so a correct call looks like one on the wrong type.
  target_compile_options(sluice_dep_cpprest INTERFACE -fno-sanitize=vptr)
endif()

# prometheus-cpp's core (the metrics registry and the text exposition format; pkg/metrics only).
add_library(sluice_dep_prometheus INTERFACE)
if(SLUICE_STATIC)
  find_package(prometheus-cpp CONFIG REQUIRED PATHS ${SLUICE_STATIC_PREFIX} NO_DEFAULT_PATH)
else()
  find_package(prometheus-cpp CONFIG REQUIRED)
endif()
target_link_libraries(sluice_dep_prometheus INTERFACE prometheus-cpp::core)

if(SLUICE_STATIC)
  # Unused functions and data of every archive are dropped at link time (the binary is the image).
  add_compile_options(-ffunction-sections -fdata-sections)
  add_link_options(-Wl,--gc-sections)
endif()
