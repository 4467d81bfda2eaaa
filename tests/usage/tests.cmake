# Usage pricing: the engine from hand-computed bills (unit), and `plugmonctl usage` against a real
# PostgreSQL with the real migrations (integration; needs the store's plugmon_store_sql).
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
include(GoogleTest)

if(TARGET plugmon_usage)
  add_executable(usage_pricing_test ${CMAKE_CURRENT_LIST_DIR}/pricing_test.cpp)
  target_link_libraries(usage_pricing_test PRIVATE plugmon_usage GTest::gtest_main plugmon_warnings)
  target_compile_definitions(usage_pricing_test PRIVATE PLUGMON_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  gtest_discover_tests(usage_pricing_test PROPERTIES LABELS unit)
endif()

if(TARGET plugmon_usage AND TARGET plugmon_store_sql AND TARGET plugmonctl)
  add_executable(usage_cli_test ${CMAKE_CURRENT_LIST_DIR}/usage_cli_test.cpp)
  target_include_directories(usage_cli_test PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  target_link_libraries(usage_cli_test PRIVATE plugmon_usage plugmon_store_sql
    GTest::gtest_main plugmon_warnings)
  target_compile_definitions(usage_cli_test PRIVATE PLUGMON_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    PLUGMONCTL="$<TARGET_FILE:plugmonctl>")
  add_dependencies(usage_cli_test plugmonctl)
  gtest_discover_tests(usage_cli_test PROPERTIES LABELS integration DISCOVERY_TIMEOUT 60)
endif()
