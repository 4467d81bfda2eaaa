# Probe unit tests; each executable gets its own probe configuration (support/test_env.cpp).
add_executable(probe_test ${CMAKE_CURRENT_LIST_DIR}/probe_test.cpp ${CMAKE_CURRENT_LIST_DIR}/../support/test_env.cpp)
target_link_libraries(probe_test PRIVATE plugmon::probe GTest::gtest_main plugmon_warnings)
target_compile_definitions(probe_test PRIVATE PLUGMON_TEST_ENV="PLUGMON_LANE_SLOTS=64|PLUGMON_NAMES=32|PLUGMON_LANES=4|PLUGMON_STATEMENTS=8|PLUGMON_RESOURCE_SAMPLES=0|PLUGMON_RUNTIME_DIR=${CMAKE_CURRENT_BINARY_DIR}/no-agent")
gtest_discover_tests(probe_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS unit)

add_executable(probe_disabled_test ${CMAKE_CURRENT_LIST_DIR}/disabled_test.cpp ${CMAKE_CURRENT_LIST_DIR}/../support/test_env.cpp)
target_link_libraries(probe_disabled_test PRIVATE plugmon::probe GTest::gtest_main plugmon_warnings)
target_compile_definitions(probe_disabled_test PRIVATE PLUGMON_TEST_ENV="PLUGMON_DISABLE=1|PLUGMON_RUNTIME_DIR=${CMAKE_CURRENT_BINARY_DIR}/no-agent")
gtest_discover_tests(probe_disabled_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS unit)

# Statement normalisation and fingerprint: pure functions, compiled in directly and built as C++17
# to hold the probe to the language level plugins may use.
add_executable(probe_fingerprint_test ${CMAKE_CURRENT_LIST_DIR}/fingerprint_test.cpp ${PROJECT_SOURCE_DIR}/probe/fingerprint.cpp)
target_link_libraries(probe_fingerprint_test PRIVATE GTest::gtest_main plugmon_warnings)
set_target_properties(probe_fingerprint_test PROPERTIES CXX_STANDARD 17)
gtest_discover_tests(probe_fingerprint_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS unit)

# Allocation accounting (plugmon::alloc). Under ASan or TSan the sanitizer runtime comes first in
# symbol lookup and its operator new wins over the library's (which is then inert); compiling the
# replacement into the executable, which comes before every library, puts it in front again so
# that the sanitizer builds still check it.
add_executable(probe_alloc_test ${CMAKE_CURRENT_LIST_DIR}/alloc_test.cpp ${CMAKE_CURRENT_LIST_DIR}/../support/test_env.cpp)
target_link_libraries(probe_alloc_test PRIVATE plugmon::alloc GTest::gtest_main plugmon_warnings)
target_compile_definitions(probe_alloc_test PRIVATE PLUGMON_TEST_ENV="PLUGMON_RUNTIME_DIR=${CMAKE_CURRENT_BINARY_DIR}/no-agent")
if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=[a-z,]*(address|thread)")
  target_sources(probe_alloc_test PRIVATE ${PROJECT_SOURCE_DIR}/probe/alloc.cpp)
endif()
gtest_discover_tests(probe_alloc_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS unit)
