# plugmon-demo against a real PostgreSQL server, no agent (label integration); included from tests/CMakeLists.txt.
if(TARGET plugmon-demo)
  find_package(nlohmann_json 3 REQUIRED)
  if(NOT TARGET PkgConfig::PQXX)
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx)
  endif()
  add_executable(demo_test ${CMAKE_CURRENT_LIST_DIR}/demo_test.cpp)
  target_link_libraries(demo_test PRIVATE
    GTest::gtest_main PkgConfig::PQXX nlohmann_json::nlohmann_json Threads::Threads plugmon_warnings)
  target_compile_definitions(demo_test PRIVATE
    PLUGMON_SOURCE_DIR="${PROJECT_SOURCE_DIR}" PLUGMON_DEMO_BIN="$<TARGET_FILE:plugmon-demo>")
  add_dependencies(demo_test plugmon-demo)
  gtest_discover_tests(demo_test DISCOVERY_MODE PRE_TEST PROPERTIES LABELS integration TIMEOUT 300)
endif()
