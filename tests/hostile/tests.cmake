# Hostile producers: hand-built segments against attach and the lane decoder (unit), and forked
# impostors that speak the socket protocol without the probe, against a real plugmon-agent (multiproc).
add_executable(hostile_segment_test ${CMAKE_CURRENT_LIST_DIR}/segment_test.cpp)
target_link_libraries(hostile_segment_test PRIVATE plugmon_agent_core GTest::gtest_main plugmon_warnings)
gtest_discover_tests(hostile_segment_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS unit)

find_package(nlohmann_json 3 REQUIRED)
# Deliberately not linked with plugmon::probe: the impostors build their segments by hand.
add_executable(hostile_test ${CMAKE_CURRENT_LIST_DIR}/hostile_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/../multiproc/harness.cpp)
target_include_directories(hostile_test PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../multiproc
  ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(hostile_test PRIVATE GTest::gtest_main nlohmann_json::nlohmann_json Threads::Threads
  plugmon_warnings)
target_compile_definitions(hostile_test PRIVATE
  PLUGMON_AGENT_BIN="$<TARGET_FILE:plugmon-agent>" PLUGMON_LOADGEN_BIN="$<TARGET_FILE:plugmon-loadgen>")
add_dependencies(hostile_test plugmon-agent plugmon-loadgen)
gtest_discover_tests(hostile_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS multiproc TIMEOUT 120 RUN_SERIAL TRUE)
