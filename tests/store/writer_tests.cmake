# The store end to end against a real PostgreSQL 15 (label: integration): exact totals, a 20 s
# server crash, connections cut during COPY and COMMIT, the agent SIGKILLed with a full spool.
if(TARGET plugmon_store AND TARGET plugmon-agent AND TARGET plugmon-loadgen)
  find_package(nlohmann_json 3 REQUIRED)
  add_executable(store_e2e_test ${CMAKE_CURRENT_LIST_DIR}/store_e2e_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/multiproc/harness.cpp)
  target_link_libraries(store_e2e_test PRIVATE GTest::gtest_main nlohmann_json::nlohmann_json PkgConfig::PQXX
    Threads::Threads plugmon_warnings)
  target_compile_definitions(store_e2e_test PRIVATE
    PLUGMON_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    PLUGMON_AGENT_BIN="$<TARGET_FILE:plugmon-agent>" PLUGMON_LOADGEN_BIN="$<TARGET_FILE:plugmon-loadgen>"
    PLUGMON_CTL_BIN="$<TARGET_FILE:plugmonctl>")
  add_dependencies(store_e2e_test plugmon-agent plugmon-loadgen plugmonctl)
  gtest_discover_tests(store_e2e_test DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS integration TIMEOUT 300 RUN_SERIAL TRUE)
endif()

# The writer in-process (label integration; also "sanitize": the ASan and TSan stages run it to
# check the spooler and writer threads).
if(TARGET plugmon_store)
  add_executable(store_writer_test ${CMAKE_CURRENT_LIST_DIR}/writer_test.cpp)
  target_link_libraries(store_writer_test PRIVATE plugmon_store GTest::gtest_main nlohmann_json::nlohmann_json
    plugmon_warnings)
  target_compile_definitions(store_writer_test PRIVATE PLUGMON_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  gtest_discover_tests(store_writer_test DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS "integration;sanitize" TIMEOUT 300)
endif()
