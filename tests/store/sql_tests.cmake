# Integration tests of the schema, its migrations and the SQL functions, against a real PostgreSQL 15 (label: integration).
if(TARGET plugmon_store_sql)
  foreach(plugmon_test IN ITEMS migrations sketch_sql maintenance)
    add_executable(store_${plugmon_test}_test ${CMAKE_CURRENT_LIST_DIR}/${plugmon_test}_test.cpp)
    target_include_directories(store_${plugmon_test}_test PRIVATE ${PROJECT_SOURCE_DIR}/tests
      ${CMAKE_CURRENT_LIST_DIR})
    target_link_libraries(store_${plugmon_test}_test PRIVATE plugmon_store_sql GTest::gtest_main
      Threads::Threads plugmon_warnings)
    target_compile_definitions(store_${plugmon_test}_test PRIVATE PLUGMON_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    # Every test starts its own server (initdb included): allow for a slow, shared machine.
    gtest_discover_tests(store_${plugmon_test}_test
      PROPERTIES LABELS integration TIMEOUT 600
      DISCOVERY_TIMEOUT 120)
  endforeach()
endif()
