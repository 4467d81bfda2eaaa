# Unit tests of the agent's configuration and HTTP listener (label: unit).
if(NOT TARGET GTest::gtest_main)
  find_package(GTest REQUIRED)
endif()
include(GoogleTest)

foreach(plugmon_test IN ITEMS config http sketch aggregate leak statements metrics)
  add_executable(agent_${plugmon_test}_test ${CMAKE_CURRENT_LIST_DIR}/${plugmon_test}_test.cpp)
  target_include_directories(agent_${plugmon_test}_test PRIVATE ${PROJECT_SOURCE_DIR}/agent)
  target_link_libraries(agent_${plugmon_test}_test PRIVATE plugmon_agent_core GTest::gtest_main plugmon_warnings)
  gtest_discover_tests(agent_${plugmon_test}_test PROPERTIES LABELS unit)
endforeach()

# plugmonctl top: the renderer and the batch loop, from JSON fixtures (top.cpp is plugmonctl's own
# source, not part of plugmon_agent_core; the core brings the nlohmann_json and fmt includes).
add_executable(agent_top_test ${CMAKE_CURRENT_LIST_DIR}/top_test.cpp ${PROJECT_SOURCE_DIR}/agent/top.cpp)
target_include_directories(agent_top_test PRIVATE ${PROJECT_SOURCE_DIR}/agent)
target_link_libraries(agent_top_test PRIVATE plugmon_agent_core GTest::gtest_main plugmon_warnings)
gtest_discover_tests(agent_top_test PROPERTIES LABELS unit)
