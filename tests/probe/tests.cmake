# Probe unit tests; each executable gets its own probe configuration (support/test_env.cpp).
add_executable(probe_test ${CMAKE_CURRENT_LIST_DIR}/probe_test.cpp ${CMAKE_CURRENT_LIST_DIR}/../support/test_env.cpp)
target_link_libraries(probe_test PRIVATE plugmon::probe GTest::gtest_main plugmon_warnings)
target_compile_definitions(probe_test PRIVATE PLUGMON_TEST_ENV="PLUGMON_LANE_SLOTS=64|PLUGMON_NAMES=32|PLUGMON_LANES=4|PLUGMON_RUNTIME_DIR=${CMAKE_CURRENT_BINARY_DIR}/no-agent")
gtest_discover_tests(probe_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS unit)

add_executable(probe_disabled_test ${CMAKE_CURRENT_LIST_DIR}/disabled_test.cpp ${CMAKE_CURRENT_LIST_DIR}/../support/test_env.cpp)
target_link_libraries(probe_disabled_test PRIVATE plugmon::probe GTest::gtest_main plugmon_warnings)
target_compile_definitions(probe_disabled_test PRIVATE PLUGMON_TEST_ENV="PLUGMON_DISABLE=1|PLUGMON_RUNTIME_DIR=${CMAKE_CURRENT_BINARY_DIR}/no-agent")
gtest_discover_tests(probe_disabled_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS unit)
