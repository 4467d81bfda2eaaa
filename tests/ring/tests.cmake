# Producer threads and the drain in one process (the configuration TSan can check).
add_executable(ring_test ${CMAKE_CURRENT_LIST_DIR}/ring_test.cpp ${CMAKE_CURRENT_LIST_DIR}/../support/test_env.cpp)
target_link_libraries(ring_test PRIVATE plugmon::probe plugmon_agent_core GTest::gtest_main plugmon_warnings)
target_compile_definitions(ring_test PRIVATE PLUGMON_TEST_ENV="PLUGMON_LANE_SLOTS=64|PLUGMON_LANES=2|PLUGMON_RECONNECT_MS=20|PLUGMON_RUNTIME_DIR=${CMAKE_CURRENT_BINARY_DIR}/ring-rt")
gtest_discover_tests(ring_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS unit RESOURCE_LOCK ring-runtime-dir)
