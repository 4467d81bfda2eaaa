# Real processes: plugmon-loadgen children, a real plugmon-agent, SIGKILL (label: multiproc).
find_package(nlohmann_json 3 REQUIRED)
add_executable(multiproc_test ${CMAKE_CURRENT_LIST_DIR}/multiproc_test.cpp ${CMAKE_CURRENT_LIST_DIR}/harness.cpp)
target_link_libraries(multiproc_test PRIVATE plugmon::probe GTest::gtest_main nlohmann_json::nlohmann_json Threads::Threads plugmon_warnings)
target_compile_definitions(multiproc_test PRIVATE
  PLUGMON_AGENT_BIN="$<TARGET_FILE:plugmon-agent>" PLUGMON_LOADGEN_BIN="$<TARGET_FILE:plugmon-loadgen>"
  PLUGMON_CTL_BIN="$<TARGET_FILE:plugmonctl>")
add_dependencies(multiproc_test plugmon-agent plugmon-loadgen plugmonctl)
gtest_discover_tests(multiproc_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS multiproc TIMEOUT 300 RUN_SERIAL TRUE)
